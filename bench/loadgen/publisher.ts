/**
 * The publisher process: POSTs `{channel, eventType, payload: {seq, sentAt}}` to the server's HTTP
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
      resolve({ sent, ok, errors, ...(firstError ? { firstError } : {}), histogram: encodeHistogram(histogram), elapsedMs: lastAnswer - start, late });
    };
    const answered = (sentAtPerf: number, error?: string): void => {
      inFlight--;
      lastAnswer = performance.now();
      if (error === undefined) {
        ok++;
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
      const body = JSON.stringify({ channel: config.channel, eventType: 'bench', payload: { seq, sentAt: performance.timeOrigin + t0 } });
      inFlight++;
      const req = request(url, { method: 'POST', agent, headers: { ...headers, 'content-length': Buffer.byteLength(body) } }, (res) => {
        const status = res.statusCode ?? 0;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => answered(t0, status >= 200 && status < 300 ? undefined : `HTTP ${status}: ${Buffer.concat(chunks).toString().slice(0, 200)}`));
      });
      req.on('error', (error) => answered(t0, error.message));
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
