/**
 * A load-generator process: opens its share of WebSocket connections to the server under test,
 * subscribes each to the bench channel, then counts and timestamps every delivery with as little
 * work as possible (see frame-scan.ts). Driven by its parent over IPC (messages.ts).
 *
 * Per connection it tracks the next expected seq and the seqs skipped so far, so a late arrival
 * is told apart from a duplicate; loss is derived by the parent from the publisher's count.
 */
import WebSocket from 'ws';
import { RawWebSocket } from './raw-ws.js';
import { NATIVE_DIALECT, nativeRecv as loadNativeRecv } from './native-recv.js';
import { encodeHistogram, newLatencyHistogram } from '../lib/stats.js';
import { makeToken } from '../lib/token.js';
import { churns, filterSeqMap, tagsOf, userName, userOfConnection } from './audience.js';
import { ackFrame, ackMsgId, findSentAt, findSeq, readNumber } from './frame-scan.js';
import type { FromWorker, OpenResult, ToWorker, WorkerConfig, WorkerReport } from './messages.js';

const histogram = newLatencyHistogram();
/** `--client native`: publish-to-kernel-receive-timestamp latency (the server's part alone), µs. */
const wireHistogram = newLatencyHistogram();
/** The native receive path, loaded only for `--client native`. */
let nativeRecv: ReturnType<typeof loadNativeRecv>;
const handshakes = newLatencyHistogram();
/** By worker-local index; a slot is empty while its connection is down. */
const clients: Array<Client | undefined> = [];
/** The config of the last `open` (storm reconnects with it). */
let opened: WorkerConfig | undefined;
let tokens: string[] = [];
let deliveries = 0;
let epoch = 0;
let unexpected = 0;
let reconnects = 0;
let reconnectsFailed = 0;
let unique = 0;
let duplicated = 0;
let outOfOrder = 0;
let maxSeq = 0;
let pings = 0;
let errorFrames = 0;
const ACK_DELAY_MS = Number(process.env.BENCH_ACK_DELAY_MS ?? 250);
let acks = 0;
let ackFrames = 0;
let open = 0;
const closedByCode: Record<string, number> = {};
const errors: string[] = [];
let cpuBase = process.cpuUsage();
let wallBase = performance.now();
const timeOrigin = performance.timeOrigin;

function send(msg: FromWorker): void {
  process.send?.(msg);
}

function noteError(text: string): void {
  if (errors.length < 5) errors.push(text);
}

/** What a Client needs of its socket; both `ws` and RawWebSocket provide it. */
interface ClientSocket {
  on(event: 'message', listener: (data: Buffer) => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
  once(event: 'open', listener: () => void): unknown;
  once(event: 'close', listener: (code: number) => void): unknown;
  send(text: string): void;
  terminate(): void;
}

function openSocket(url: string, config: WorkerConfig, localAddress: string | undefined): ClientSocket {
  if (config.client === 'raw' || config.client === 'native') return new RawWebSocket(url, { localAddress });
  const ws = new WebSocket(url, {
    perMessageDeflate: false,
    skipUTF8Validation: true,
    handshakeTimeout: config.connectTimeoutMs,
    ...(localAddress ? { localAddress } : {}),
  });
  return ws as unknown as ClientSocket;
}

const PING_BYTES = Buffer.from('"ping"');
const HERALD_PONG = '{"type":"pong"}';

/** How a connection accounts for deliveries: all of them (default), through a seq map (filter), or not at all (storm churners). */
interface Accounting {
  /** Global seq → this connection's seq (1, 2, 3… over what it should get); 0 = not meant for it. */
  seqOf?: ((seq: number) => number) | undefined;
  /** False: its deliveries are read but not counted (it drops and reconnects, so its runs break). */
  counted: boolean;
}

/** One connection: handshake state, then delivery accounting. */
class Client {
  private next = 1;
  private missing: Set<number> | undefined;
  private subscribed = false;
  private opened = false;
  /** Closed by the loadgen itself (storm): not a server close. */
  private dropped = false;
  private settle: ((error?: Error) => void) | undefined;
  /** Subscriptions still awaiting their reply. */
  private awaiting = 0;
  /** msgIds received in the current read, acknowledged together once it has been processed. */
  private pendingAcks: string[] | undefined;
  /** The descriptor the native receive path reads, once handed over (-1: JavaScript reads). */
  private nativeFd = -1;

  constructor(
    private readonly ws: ClientSocket,
    private readonly dialect: WorkerConfig['dialect'],
    private readonly token: string,
    private readonly channels: readonly string[],
    private readonly accounting: Accounting,
  ) {}

  /** Resolves once subscribed (or connected, with no channel). */
  start(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.finish(new Error('handshake timeout')), timeoutMs);
      this.settle = (error) => {
        clearTimeout(timer);
        this.settle = undefined;
        if (error) {
          this.ws.terminate();
          reject(error);
        } else resolve();
      };
      this.ws.on('message', (data: Buffer) => this.onMessage(data));
      this.ws.once('open', () => {
        this.opened = true;
        open++;
        if (this.dialect === 'herald') this.ws.send(JSON.stringify({ type: 'connect', id: 1, token: this.token, client: 'herald-bench' }));
        // Socket.IO: wait for the Engine.IO open packet ('0{…}') before connecting the namespace.
      });
      this.ws.on('error', (error) => this.finish(error));
      this.ws.once('close', (code) => {
        if (this.opened) open--;
        if (this.dropped) return;
        if (this.subscribed) closedByCode[code] = (closedByCode[code] ?? 0) + 1;
        else this.finish(new Error(`closed during handshake (${code})`));
      });
    });
  }

  private finish(error?: Error): void {
    this.settle?.(error);
  }

  close(): void {
    this.dropped = true;
    if (this.nativeFd >= 0) nativeRecv?.remove(this.nativeFd);
    this.nativeFd = -1;
    this.ws.terminate();
  }

  /** Hands the socket to the native receive path (`--client native`), as connection `id` of this worker. */
  attachNative(id: number): void {
    nativeRecv ??= loadNativeRecv();
    const detached = this.ws instanceof RawWebSocket ? this.ws.detach() : undefined;
    if (!nativeRecv || !detached) throw new Error('native receive: the socket cannot be handed over');
    const err = nativeRecv.add(detached.fd, id, NATIVE_DIALECT[this.dialect], detached.leftover);
    if (err !== 0) {
      this.ws.terminate();
      throw new Error(`native receive: add failed (errno ${-err})`);
    }
    this.nativeFd = detached.fd;
    ensureNativeDrain();
  }

  /** A delivery read by the native path: latencies in ms (wire: kernel receive timestamp; arrival: read). */
  fromNative(seq: number, wireMs: number, arrivalMs: number): void {
    if (!this.accounting.counted) return;
    if (wireMs === wireMs) wireHistogram.recordValue(Math.max(1, Math.round(wireMs * 1000)));
    this.account(seq, arrivalMs);
  }

  /** The native path saw a close frame (its code) or EOF (1006). */
  nativeClosed(code: number): void {
    this.nativeFd = -1;
    if (this.opened) open--;
    this.opened = false;
    if (!this.dropped) closedByCode[code] = (closedByCode[code] ?? 0) + 1;
  }

  private onMessage(data: Buffer): void {
    const seqAt = findSeq(data);
    if (seqAt >= 0) {
      // ACK even a delivery that beats the last `subscribed` reply, or it would be retransmitted.
      if (this.dialect === 'herald') this.ackIfAsked(data);
      if (this.subscribed) {
        if (this.accounting.counted) this.onDelivery(data, seqAt);
        return;
      }
    }
    if (this.dialect === 'herald') this.onHeraldControl(data);
    else this.onSocketIoControl(data);
  }

  /** Queues the msgId of an at-least-once delivery (`"ack":true`) for this read's ack frame. */
  private ackIfAsked(data: Buffer): void {
    const msgId = ackMsgId(data);
    if (msgId === undefined) return;
    // Like the SDK (`ackDelay`, default 250 ms), ACKs are gathered for a short while and leave in
    // one frame; BENCH_ACK_DELAY_MS=0 acknowledges each read's deliveries at once.
    if (this.pendingAcks) this.pendingAcks.push(msgId);
    else {
      this.pendingAcks = [msgId];
      if (ACK_DELAY_MS > 0) setTimeout(() => this.flushAcks(), ACK_DELAY_MS);
      else queueMicrotask(() => this.flushAcks());
    }
  }

  private onDelivery(data: Buffer, seqAt: number): void {
    const now = timeOrigin + performance.now();
    const sentAtAt = findSentAt(data, seqAt);
    const sentAt = sentAtAt < 0 ? NaN : readNumber(data, sentAtAt);
    this.account(readNumber(data, seqAt), now - sentAt);
  }

  /** Counts one delivery of the publisher's `published` seq, `latencyMs` after it was sent (NaN: unknown). */
  private account(published: number, latencyMs: number): void {
    const seqOf = this.accounting.seqOf;
    const seq = seqOf ? seqOf(published) : published;
    if (seq === 0) {
      unexpected++;
      return;
    }
    deliveries++;
    if (latencyMs === latencyMs) {
      const us = Math.round(latencyMs * 1000);
      histogram.recordValue(us < 1 ? 1 : us);
    }
    if (seq > maxSeq) maxSeq = seq;
    if (seq === this.next) {
      this.next++;
      unique++;
    } else if (seq > this.next) {
      // Skipped seqs may still arrive late; remember them (bounded) to tell late from duplicate.
      const missing = (this.missing ??= new Set());
      for (let s = this.next; s < seq && missing.size < 100_000; s++) missing.add(s);
      this.next = seq + 1;
      unique++;
    } else if (this.missing?.delete(seq)) {
      outOfOrder++;
      unique++;
    } else {
      duplicated++;
    }
  }

  private flushAcks(): void {
    const ids = this.pendingAcks;
    this.pendingAcks = undefined;
    if (!ids) return;
    acks += ids.length;
    ackFrames++;
    this.ws.send(ackFrame(ids));
  }

  /** Sends every subscribe at once; `subscribed` once all are answered. */
  private subscribeAll(): void {
    if (this.channels.length === 0) {
      this.subscribed = true;
      this.finish();
      return;
    }
    this.awaiting = this.channels.length;
    this.channels.forEach((channel, i) => {
      if (this.dialect === 'herald') this.ws.send(JSON.stringify({ type: 'subscribe', id: 2 + i, channel }));
      else this.ws.send(`42${i}${JSON.stringify(['subscribe', channel])}`);
    });
  }

  private onSubscribed(): void {
    if (--this.awaiting > 0) return;
    this.subscribed = true;
    this.finish();
  }

  private onHeraldControl(data: Buffer): void {
    if (data.length < 64 && data.indexOf(PING_BYTES) >= 0) {
      pings++;
      this.ws.send(HERALD_PONG);
      return;
    }
    let frame: { type?: string; error?: { code?: string; message?: string } };
    try {
      frame = JSON.parse(data.toString('utf8')) as typeof frame;
    } catch {
      return noteError(`unparsable frame: ${data.subarray(0, 80).toString()}`);
    }
    switch (frame.type) {
      case 'connected':
        this.subscribeAll();
        return;
      case 'subscribed':
        this.onSubscribed();
        return;
      case 'error':
        errorFrames++;
        noteError(`error frame: ${frame.error?.code} ${frame.error?.message}`);
        if (!this.subscribed) this.finish(new Error(`error frame ${frame.error?.code}`));
        return;
      default:
        return;
    }
  }

  /** Engine.IO v4 packets: 0 open, 2 ping, 3 pong, 4 message; Socket.IO: 40 connect, 44 error, 43<id> ack. */
  private onSocketIoControl(data: Buffer): void {
    const text = data.toString('utf8');
    if (text === '2') {
      pings++;
      this.ws.send('3');
      return;
    }
    if (text.startsWith('0{')) {
      this.ws.send(`40${JSON.stringify({ token: this.token })}`);
    } else if (text.startsWith('40')) {
      this.subscribeAll();
    } else if (text.startsWith('43')) {
      this.onSubscribed();
    } else if (text.startsWith('44')) {
      errorFrames++;
      noteError(`socket.io connect error: ${text.slice(2, 120)}`);
      this.finish(new Error('socket.io connect error'));
    }
  }
}

function wsUrl(config: WorkerConfig, url: string): string {
  if (config.dialect === 'socketio') {
    const u = new URL(url);
    u.pathname = '/socket.io/';
    u.search = '?EIO=4&transport=websocket';
    return u.toString();
  }
  return url;
}

/** The channels connection `g` subscribes to. */
function channelsOf(config: WorkerConfig, g: number): string[] {
  const subs = config.subscriptions;
  if (!subs) return config.channel === '' ? [] : [config.channel];
  return subs.perConnection === 'all' ? subs.channels : [subs.channels[g % subs.channels.length]!];
}

/** The node connection `g` connects to (see WorkerConfig.urls). */
function nodeOf(config: WorkerConfig, g: number, urls: string[]): string {
  const subs = config.subscriptions;
  const k = subs?.perConnection === 'one' ? Math.floor(g / subs.channels.length) : g;
  return urls[k % urls.length]!;
}

/** The token's subject and tags of connection g (audience.ts). */
function identityOf(config: WorkerConfig, g: number): { sub: string; tags?: Record<string, string> } {
  const a = config.audience;
  if (a?.kind === 'users') return { sub: userName(userOfConnection(g, a.maxDevices)) };
  if (a?.kind === 'filter') return { sub: `user-${g}`, tags: tagsOf(g) };
  return { sub: `user-${g}` };
}

function accountingOf(config: WorkerConfig, g: number): Accounting {
  const a = config.audience;
  if (a?.kind === 'filter') return { seqOf: filterSeqMap(g), counted: true };
  if (a?.kind === 'churn') return { counted: !churns(g, a.churnPct) };
  return { counted: true };
}

/**
 * Connects (and subscribes) the worker-local connections `indices`, `concurrency` handshakes at
 * once; `onHandshake` gets each successful one's duration (TCP connect → subscribed), µs.
 */
async function connectMany(config: WorkerConfig, indices: number[], onHandshake?: (us: number) => void): Promise<OpenResult> {
  const urls = (config.urls && config.urls.length > 0 ? config.urls : [config.url]).map((u) => wsUrl(config, u));
  let next = 0;
  let connected = 0;
  let failed = 0;
  const started = performance.now();
  let lastDone = started;
  let lastTick = started;
  const lane = async (): Promise<void> => {
    while (next < indices.length) {
      const i = indices[next++]!;
      const g = config.firstIndex + i;
      const localAddress = config.sourceAddresses[g % config.sourceAddresses.length];
      const t0 = performance.now();
      const ws = openSocket(nodeOf(config, g, urls), config, localAddress);
      const client = new Client(ws, config.dialect, tokens[i]!, channelsOf(config, g), accountingOf(config, g));
      try {
        await client.start(config.connectTimeoutMs);
        if (config.client === 'native') client.attachNative(i);
        clients[i] = client;
        connected++;
        onHandshake?.(Math.max(1, Math.round((performance.now() - t0) * 1000)));
      } catch (error) {
        failed++;
        noteError(`connection ${g}: ${error instanceof Error ? error.message : String(error)}`);
      }
      lastDone = performance.now();
      if (lastDone - lastTick >= 1000) {
        lastTick = lastDone;
        send({ ev: 'tick', deliveries, open, epoch });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(config.concurrency, indices.length)) }, lane));
  return { connected, failed, elapsedMs: lastDone - started, errors: [...errors] };
}

async function openAll(c: WorkerConfig): Promise<OpenResult> {
  opened = c;
  // Sign every token first so that the connection rate measures the server, not jose.
  tokens = [];
  for (let i = 0; i < c.count; i++) {
    const { sub, tags } = identityOf(c, c.firstIndex + i);
    tokens.push(await makeToken(c.secret, sub, ['*'], tags));
  }
  return connectMany(c, Array.from({ length: c.count }, (_, i) => i));
}

/** Drops every churning connection at once, then reconnects (and resubscribes) them all. */
async function churn(): Promise<OpenResult> {
  const c = opened;
  const a = c?.audience;
  if (!c || a?.kind !== 'churn') return { connected: 0, failed: 0, elapsedMs: 0, errors: ['churn without a churn audience'] };
  const indices: number[] = [];
  for (let i = 0; i < c.count; i++) {
    if (!churns(c.firstIndex + i, a.churnPct)) continue;
    indices.push(i);
    clients[i]?.close();
    clients[i] = undefined;
  }
  errors.length = 0;
  const result = await connectMany(c, indices, (us) => handshakes.recordValue(us));
  reconnects += result.connected;
  reconnectsFailed += result.failed;
  return result;
}

// ---- native receive path (`--client native`) -------------------------------------------------

const DRAIN_BATCH = 8192;
const drained = { ids: new Int32Array(DRAIN_BATCH), seqs: new Float64Array(DRAIN_BATCH), wire: new Float64Array(DRAIN_BATCH), arrival: new Float64Array(DRAIN_BATCH) };
const closedIds = new Int32Array(1024);
const closedCodes = new Int32Array(1024);
const nativeCounters = new Float64Array(6);
/** The native counters at the start of the window (they are cumulative in the addon). */
const nativeBase = new Float64Array(6);
let drainTimer: NodeJS.Timeout | undefined;

function ensureNativeDrain(): void {
  // Every 10 ms: the addon's ring holds 2^20 records, this keeps the backlog small at any rate.
  drainTimer ??= setInterval(drainNative, 10);
}

/** Accounts every record the native thread has gathered, and the connections it saw close. */
function drainNative(): void {
  if (!nativeRecv || !drainTimer) return;
  const { ids, seqs, wire, arrival } = drained;
  let n: number;
  do {
    n = nativeRecv.drain(ids, seqs, wire, arrival);
    for (let i = 0; i < n; i++) clients[ids[i]!]?.fromNative(seqs[i]!, wire[i]!, arrival[i]!);
  } while (n === DRAIN_BATCH);
  do {
    n = nativeRecv.closes(closedIds, closedCodes);
    for (let i = 0; i < n; i++) clients[closedIds[i]!]?.nativeClosed(closedCodes[i]!);
  } while (n === closedIds.length);
  nativeRecv.counters(nativeCounters);
  if (nativeCounters[3]! > nativeBase[3]!) noteError(`native receive: ${nativeCounters[3]! - nativeBase[3]!} deliveries dropped (record ring full)`);
}

/** Native counter `k` since the window began: 0 pings answered, 1 error frames. */
function nativeCount(k: number): number {
  return drainTimer ? nativeCounters[k]! - nativeBase[k]! : 0;
}

function report(): WorkerReport {
  const cpu = process.cpuUsage(cpuBase);
  return {
    histogram: encodeHistogram(histogram),
    wireHistogram: wireHistogram.totalCount > 0 ? encodeHistogram(wireHistogram) : undefined,
    handshakeHistogram: encodeHistogram(handshakes),
    deliveries,
    unexpected,
    reconnects,
    reconnectsFailed,
    unique,
    duplicated,
    outOfOrder,
    maxSeq,
    open,
    closedByCode,
    pings: pings + nativeCount(0),
    errorFrames: errorFrames + nativeCount(1),
    acks,
    ackFrames,
    cpuMicros: cpu.user + cpu.system,
    wallMs: performance.now() - wallBase,
  };
}

let ticker: NodeJS.Timeout | undefined;
/**
 * How often counts go to the controller. Its per-second series is the difference of the counts it
 * holds at each of its own seconds; with one tick a second the two clocks drift past each other
 * and a second shows 0 and the next twice the rate. At 100 ms a sample is off by at most a tenth.
 */
const TICK_MS = 100;

process.on('message', (msg: ToWorker) => {
  switch (msg.cmd) {
    case 'open':
      void openAll(msg.config).then((result) => {
        send({ ev: 'opened', result });
        ticker ??= setInterval(() => {
          drainNative();
          send({ ev: 'tick', deliveries, open, epoch });
        }, TICK_MS);
      });
      return;
    case 'measure':
      drainNative();
      nativeBase.set(nativeCounters);
      wireHistogram.reset();
      epoch++;
      histogram.reset();
      handshakes.reset();
      deliveries = unique = duplicated = outOfOrder = pings = errorFrames = acks = ackFrames = unexpected = reconnects = reconnectsFailed = 0;
      cpuBase = process.cpuUsage();
      wallBase = performance.now();
      return;
    case 'count':
      drainNative();
      send({ ev: 'count', deliveries });
      return;
    case 'churn':
      void churn().then((result) => send({ ev: 'churned', result }));
      return;
    case 'report':
      drainNative();
      send({ ev: 'report', report: report() });
      return;
    case 'close':
      if (ticker) clearInterval(ticker);
      if (drainTimer) clearInterval(drainTimer);
      // The thread stops reading before any descriptor is closed.
      nativeRecv?.stop();
      for (const c of clients) c?.close();
      send({ ev: 'closed' });
      setTimeout(() => process.exit(0), 100);
      return;
  }
});
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
send({ ev: 'ready' });
