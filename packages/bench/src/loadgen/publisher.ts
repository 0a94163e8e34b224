/**
 * The publisher process: POSTs `{channel | user | broadcast+filter, eventType, payload: {seq, sentAt}}` to the server's HTTP
 * publish endpoint at a fixed rate over keep-alive connections, seq 1, 2, 3…, where
 * `sentAt = performance.timeOrigin + performance.now()` just before the request is written.
 * Open loop: a slow server does not slow the schedule until `maxInFlight` publishes are unanswered.
 */
import { Agent, request } from 'node:http';
import { encodeHistogram, newLatencyHistogram } from '../lib/stats.js';
import type { FromPublisher, PublisherConfig, PublishReport, ToPublisher } from './messages.js';

function send(msg: FromPublisher): void {
  process.send?.(msg);
}

function publish(config: PublisherConfig): Promise<PublishReport> {
  const url = new URL(config.url);
  const agent = new Agent({ keepAlive: true, maxSockets: config.sockets, maxFreeSockets: config.sockets });
  const histogram = newLatencyHistogram();
  const total = Math.max(1, Math.round(config.rate * config.durationS));
  const names = config.targets?.names ?? [];
  const filters = config.filters ?? [];
  const batch = config.targets?.mode === 'batch' && names.length > 0;
  const spread = config.targets?.mode === 'spread' && names.length > 0;
  const field = config.targets?.field ?? 'channel';
  const okByTarget = (filters.length > 0 ? filters : names).map(() => 0);
  const seqOffset = config.seqOffset ?? 0;
  if (batch) url.pathname = `${url.pathname.replace(/\/$/, '')}/batch`;
  const delivery = config.delivery ? { delivery: config.delivery } : {};
  /** The request body of publish number `i` (1-based) and the target index it goes to (-1: all, batch; -2: the one channel). */
  const bodyOf = (i: number, sentAt: number): { body: string; target: number } => {
    if (batch) {
      const n = names.length;
      const messages = names.map((channel, c) => ({ channel, eventType: 'bench', ...delivery, payload: { seq: seqOffset + (i - 1) * n + c + 1, sentAt } }));
      return { body: JSON.stringify({ messages }), target: -1 };
    }
    if (spread) {
      const t = (i - 1) % names.length;
      const perTarget = seqOffset + Math.floor((i - 1) / names.length) + 1;
      return { body: JSON.stringify({ [field]: names[t], eventType: 'bench', ...delivery, payload: { seq: perTarget, sentAt } }), target: t };
    }
    if (filters.length > 0) {
      const f = (i - 1) % filters.length;
      return { body: JSON.stringify({ broadcast: true, filter: filters[f], eventType: 'bench', ...delivery, payload: { seq: seqOffset + i, sentAt } }), target: f };
    }
    return { body: JSON.stringify({ channel: config.channel, eventType: 'bench', ...delivery, payload: { seq: seqOffset + i, sentAt } }), target: -2 };
  };
  const intervalMs = 1000 / config.rate;
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${config.apiKey}` };
  let sent = 0;
  let ok = 0;
  let errors = 0;
  let late = 0;
  let inFlight = 0;
  let firstError: string | undefined;
  let lastAnswer = 0;
  const start = performance.now();

  return new Promise((resolve) => {
    const finish = (): void => {
      agent.destroy();
      resolve({ sent, ok, errors, ...(firstError ? { firstError } : {}), ...(okByTarget.length > 0 ? { okByTarget } : {}), histogram: encodeHistogram(histogram), elapsedMs: lastAnswer - start, late });
    };
    const answered = (sentAtPerf: number, target: number, error?: string): void => {
      inFlight--;
      lastAnswer = performance.now();
      if (error === undefined) {
        ok++;
        if (target >= 0) okByTarget[target]!++;
        else if (target === -1) for (let c = 0; c < okByTarget.length; c++) okByTarget[c]!++;
        histogram.recordValue(Math.max(1, Math.round((lastAnswer - sentAtPerf) * 1000)));
      } else {
        errors++;
        firstError ??= error;
      }
      if (sent === total && inFlight === 0) finish();
      else if (inFlight === config.maxInFlight - 1) tick();
    };
    const fire = (): void => {
      const seq = ++sent;
      const t0 = performance.now();
      const { body, target } = bodyOf(seq, performance.timeOrigin + t0);
      inFlight++;
      const req = request(url, { method: 'POST', agent, headers: { ...headers, 'content-length': Buffer.byteLength(body) } }, (res) => {
        const status = res.statusCode ?? 0;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          let error = status >= 200 && status < 300 ? undefined : `HTTP ${status}: ${text.slice(0, 200)}`;
          // A batch answers 200 with a result per message; any per-message error fails the batch.
          if (error === undefined && batch && text.includes('"error"')) error = `batch: ${text.slice(0, 200)}`;
          answered(t0, target, error);
        });
      });
      req.on('error', (error) => answered(t0, target, error.message));
      req.end(body);
    };
    let timer: NodeJS.Timeout | undefined;
    const tick = (): void => {
      if (timer) clearTimeout(timer);
      timer = undefined;
      const elapsed = performance.now() - start;
      while (sent < total && inFlight < config.maxInFlight && sent * intervalMs <= elapsed) {
        if (elapsed - sent * intervalMs > 10) late++;
        fire();
      }
      if (sent < total && inFlight < config.maxInFlight) {
        timer = setTimeout(tick, Math.max(0, sent * intervalMs - (performance.now() - start)));
      }
    };
    tick();
  });
}

process.on('message', (msg: ToPublisher) => {
  if (msg.cmd === 'publish') void publish(msg.config).then((report) => send({ ev: 'published', report }));
});
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
send({ ev: 'ready' });
