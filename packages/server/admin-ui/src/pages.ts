/** The admin UI's pages other than the overview: nodes, channels, connections, publish, messages, inbox. */
import { useState } from 'preact/hooks';
import { enc, get, post } from './api.js';
import { usePoll } from './overview.js';
import { ErrorLine, fmtBytes, fmtDuration, fmtNumber, fmtTime, html } from './ui.js';

type Row = Record<string, unknown>;

export function NodesPage() {
  const { data, error } = usePoll<{ node: string; beats: Row[]; byNode: Row[]; nodes?: { missing: string[] } }>('/nodes', 2000);
  const beats = new Map((data?.beats ?? []).map((b) => [b.node as string, b]));
  return html`<section>
    <h2>Nodes</h2>
    <${ErrorLine} error=${error} />
    <p class="muted">${beats.size > 0 ? `${beats.size} live node(s) by heartbeat` : 'Single node (no cluster engine)'}; this UI is served by <code>${data?.node ?? ''}</code>.${data?.nodes?.missing.length ? ` Not answering: ${data.nodes.missing.join(', ')}.` : ''}</p>
    <table data-testid="nodes">
      <thead><tr><th>node</th><th>version</th><th>uptime</th><th class="num">connections</th><th class="num">users</th><th class="num">subscriptions</th><th class="num">channels</th><th class="num">deliveries/s</th><th class="num">queued</th><th class="num">RSS</th><th class="num">heap</th><th>last heartbeat</th></tr></thead>
      <tbody>${(data?.byNode ?? []).map((n) => {
        const b = beats.get(n.node as string);
        return html`<tr data-node=${n.node}>
          <td><code>${n.node}</code>${n.node === data?.node ? ' (this)' : ''}</td><td>${(b?.version as string) ?? '—'}</td><td>${fmtDuration(n.uptimeSeconds)}</td>
          <td class="num" data-testid="node-connections">${fmtNumber(n.connections as number)}</td><td class="num">${fmtNumber(n.users as number)}</td>
          <td class="num">${fmtNumber(n.subscriptions as number)}</td><td class="num">${fmtNumber(n.channels as number)}</td>
          <td class="num">${fmtNumber(n.deliveriesPerSecond as number)}</td><td class="num">${fmtBytes(n.queuedBytes)}</td>
          <td class="num">${fmtBytes(n.rssBytes)}</td><td class="num">${fmtBytes(n.heapUsedBytes)}</td><td>${fmtTime(b?.lastHeartbeat as number)}</td>
        </tr>`;
      })}</tbody>
    </table>
  </section>`;
}

export function ChannelsPage() {
  const [prefix, setPrefix] = useState('');
  const { data, error } = usePoll<{ channels: Array<{ channel: string; subscribers: number; presence?: number }>; total: number; presence: boolean }>(`/channels?prefix=${enc(prefix)}`, 2000);
  return html`<section>
    <h2>Channels</h2>
    <label>Prefix <input data-testid="channel-prefix" value=${prefix} onInput=${(e: Event) => setPrefix((e.target as HTMLInputElement).value)} placeholder="e.g. room:" /></label>
    <${ErrorLine} error=${error} />
    <p class="muted">${fmtNumber(data?.total)} channel(s) with subscribers on any node${data && data.total > data.channels.length ? `, the ${data.channels.length} busiest shown` : ''}.${data && !data.presence ? ' Presence counts appear here once presence is enabled.' : ''}</p>
    <table data-testid="channels">
      <thead><tr><th>channel</th><th class="num">subscribers (cluster)</th>${data?.presence ? html`<th class="num">present users</th>` : ''}</tr></thead>
      <tbody>${(data?.channels ?? []).map((c) => html`<tr data-channel=${c.channel}><td><code>${c.channel}</code></td><td class="num" data-testid="subscribers">${fmtNumber(c.subscribers)}</td>${data?.presence ? html`<td class="num" data-testid="present">${fmtNumber(c.presence)}</td>` : ''}</tr>`)}</tbody>
    </table>
  </section>`;
}

interface Conn { connectionId: string; user: string; node: string; connectedAt: number; remoteAddress?: string; channels?: string[]; tags?: Row }

export function ConnectionsPage() {
  const [user, setUser] = useState('');
  const [conns, setConns] = useState<Conn[] | undefined>();
  const [reconnect, setReconnect] = useState(true);
  const [note, setNote] = useState('');
  const [error, setError] = useState<unknown>();
  const search = async (e?: Event) => {
    e?.preventDefault();
    setError(undefined);
    try {
      setConns((await get<{ connections: Conn[] }>(`/users/${enc(user)}/connections`)).connections);
    } catch (err) { setError(err); }
  };
  const disconnect = async (path: string) => {
    setError(undefined);
    try {
      const r = await post<{ disconnected: number }>(path, { reconnect });
      setNote(`Disconnected ${r.disconnected} connection(s) with ${reconnect ? '4000-range code: clients reconnect' : '4500-range code: clients stay away'}.`);
      // A close completes after the answer (the client's close handshake): list again a moment later.
      await new Promise((resolve) => setTimeout(resolve, 300));
      await search();
    } catch (err) { setError(err); }
  };
  return html`<section>
    <h2>Connections</h2>
    <form onSubmit=${search} class="row">
      <label>User <input data-testid="conn-user" required value=${user} onInput=${(e: Event) => setUser((e.target as HTMLInputElement).value)} /></label>
      <button type="submit" data-testid="conn-search">Search</button>
    </form>
    <fieldset class="row"><legend>Disconnect as</legend>
      <label><input type="radio" name="mode" data-testid="mode-reconnect" checked=${reconnect} onChange=${() => setReconnect(true)} /> reconnect (client comes back, recovers)</label>
      <label><input type="radio" name="mode" data-testid="mode-terminal" checked=${!reconnect} onChange=${() => setReconnect(false)} /> terminal (client does not reconnect)</label>
    </fieldset>
    <${ErrorLine} error=${error} />
    ${note ? html`<p class="note" data-testid="note">${note}</p>` : ''}
    ${conns ? html`<p class="muted" data-testid="conn-count">${conns.length} connection(s) of ${user}</p>
      ${conns.length > 0 ? html`<button class="danger" data-testid="disconnect-user" onClick=${() => disconnect(`/users/${enc(user)}/disconnect`)}>Disconnect all of ${user}</button>` : ''}
      <table data-testid="connections">
        <thead><tr><th>connection</th><th>node</th><th>connected</th><th>address</th><th>channels</th><th></th></tr></thead>
        <tbody>${conns.map((c) => html`<tr data-connection=${c.connectionId}>
          <td><code>${c.connectionId}</code></td><td>${c.node}</td><td>${fmtTime(c.connectedAt)}</td><td>${c.remoteAddress ?? '—'}</td>
          <td>${(c.channels ?? []).join(', ')}</td>
          <td><button class="danger" data-testid="disconnect" onClick=${() => disconnect(`/connections/${enc(c.connectionId)}/disconnect`)}>Disconnect</button></td>
        </tr>`)}</tbody>
      </table>` : ''}
  </section>`;
}

export function PublishPage() {
  const [kind, setKind] = useState<'channel' | 'user' | 'broadcast'>('channel');
  const [target, setTarget] = useState('');
  const [eventType, setEventType] = useState('admin.message');
  const [payload, setPayload] = useState('{"text": "hello"}');
  const [filter, setFilter] = useState('');
  const [delivery, setDelivery] = useState('');
  const [msgId, setMsgId] = useState('');
  const [result, setResult] = useState<unknown>();
  const [error, setError] = useState<unknown>();
  const input = (set: (v: string) => void) => (e: Event) => set((e.target as HTMLInputElement).value);
  const send = async (e: Event) => {
    e.preventDefault();
    setError(undefined);
    setResult(undefined);
    try {
      const body: Row = { eventType, payload: JSON.parse(payload) as unknown };
      if (kind === 'broadcast') body.broadcast = true;
      else body[kind] = target;
      if (filter.trim()) body.filter = JSON.parse(filter) as unknown;
      if (delivery) body.delivery = delivery;
      if (msgId) body.msgId = msgId;
      if (delivery === 'at-least-once') body.receipts = true;
      setResult(await post('/publish', body));
    } catch (err) { setError(err); }
  };
  return html`<section>
    <h2>Publish</h2>
    <form onSubmit=${send} class="stack">
      <div class="row">
        <label>To <select data-testid="pub-kind" value=${kind} onChange=${(e: Event) => setKind((e.target as HTMLSelectElement).value as typeof kind)}>
          <option value="channel">channel</option><option value="user">user</option><option value="broadcast">everyone</option></select></label>
        ${kind !== 'broadcast' ? html`<label>${kind} <input data-testid="pub-target" required value=${target} onInput=${input(setTarget)} /></label>` : ''}
        <label>eventType <input data-testid="pub-event" required value=${eventType} onInput=${input(setEventType)} /></label>
      </div>
      <label>payload (JSON) <textarea data-testid="pub-payload" rows="4" value=${payload} onInput=${input(setPayload)}></textarea></label>
      <label>tag filter (JSON, optional) <textarea data-testid="pub-filter" rows="2" placeholder='{"tag":"plan","op":"eq","value":"pro"}' value=${filter} onInput=${input(setFilter)}></textarea></label>
      <div class="row">
        <label>delivery <select data-testid="pub-delivery" value=${delivery} onChange=${input(setDelivery)}>
          <option value="">default</option><option value="at-most-once">at-most-once</option><option value="at-least-once">at-least-once (with receipt)</option></select></label>
        <label>msgId (optional) <input data-testid="pub-msgid" value=${msgId} onInput=${input(setMsgId)} /></label>
        <button type="submit" data-testid="pub-send">Publish</button>
      </div>
    </form>
    <${ErrorLine} error=${error} />
    ${result ? html`<pre data-testid="pub-result">${JSON.stringify(result, null, 2)}</pre>` : ''}
  </section>`;
}

export function MessagesPage() {
  const [msgId, setMsgId] = useState('');
  const [receipt, setReceipt] = useState<Row | undefined>();
  const [error, setError] = useState<unknown>();
  const look = async (e: Event) => {
    e.preventDefault();
    setError(undefined);
    setReceipt(undefined);
    try { setReceipt(await get<Row>(`/messages/${enc(msgId)}`)); } catch (err) { setError(err); }
  };
  const counts = (receipt?.counts ?? {}) as Record<string, number>;
  return html`<section>
    <h2>Message receipt</h2>
    <form onSubmit=${look} class="row">
      <label>msgId <input data-testid="msg-id" required value=${msgId} onInput=${(e: Event) => setMsgId((e.target as HTMLInputElement).value)} /></label>
      <button type="submit" data-testid="msg-lookup">Look up</button>
    </form>
    <${ErrorLine} error=${error} />
    ${receipt ? html`<div>
      <p>State <strong data-testid="msg-state">${receipt.state as string}</strong> · target <code>${receipt.target as string}</code> · accepted ${fmtTime(receipt.acceptedAt as number)}</p>
      <table data-testid="msg-counts"><thead><tr>${Object.keys(counts).map((k) => html`<th class="num">${k}</th>`)}</tr></thead>
        <tbody><tr>${Object.entries(counts).map(([k, v]) => html`<td class="num" data-count=${k}>${fmtNumber(v)}</td>`)}</tr></tbody></table>
      <pre>${JSON.stringify(receipt, null, 2)}</pre>
    </div>` : ''}
  </section>`;
}

interface InboxEntry { seq: number; storedAt: number; channel?: string; envelope: { msgId: string; eventType: string; payload: unknown } }

export function InboxPage() {
  const [user, setUser] = useState('');
  const [inbox, setInbox] = useState<{ size: number; entries: InboxEntry[] } | undefined>();
  const [error, setError] = useState<unknown>();
  const look = async (e: Event) => {
    e.preventDefault();
    setError(undefined);
    try { setInbox(await get(`/users/${enc(user)}/inbox`)); } catch (err) { setError(err); }
  };
  return html`<section>
    <h2>Inbox</h2>
    <form onSubmit=${look} class="row">
      <label>User <input data-testid="inbox-user" required value=${user} onInput=${(e: Event) => setUser((e.target as HTMLInputElement).value)} /></label>
      <button type="submit" data-testid="inbox-lookup">Show inbox</button>
    </form>
    <${ErrorLine} error=${error} />
    ${inbox ? html`<p class="muted" data-testid="inbox-size">${inbox.size} message(s) waiting</p>
      <table data-testid="inbox"><thead><tr><th>seq</th><th>msgId</th><th>eventType</th><th>channel</th><th>stored</th><th>payload</th></tr></thead>
        <tbody>${inbox.entries.map((e) => html`<tr data-msgid=${e.envelope.msgId}><td class="num">${e.seq}</td><td><code>${e.envelope.msgId}</code></td><td>${e.envelope.eventType}</td><td>${e.channel ?? '—'}</td><td>${fmtTime(e.storedAt)}</td><td><code>${JSON.stringify(e.envelope.payload).slice(0, 200)}</code></td></tr>`)}</tbody></table>` : ''}
  </section>`;
}
