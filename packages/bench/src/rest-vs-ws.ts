/**
 * REST polling versus WebSocket push, both served by Herald: the same stream of events
 * reaches N clients either by polling `/poll/v1/channels/{channel}/messages` every P ms over
 * keep-alive HTTP, by long polling it, or by push over WebSocket. Reports delivery latency,
 * HTTP requests per second, bytes on the wire per delivered event and server CPU.
 *
 *   node packages/bench/dist/rest-vs-ws.js [--clients 100] [--rate 10] [--duration 8] [--intervals 1000,250] [--pin]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { freePort } from './lib/ports.js';
import { cpuMicros } from './lib/proc.js';
import { BENCH_SECRET, makeToken } from './lib/token.js';
import { HERALD_BIN } from './lib/herald-bin.js';

const API_KEY = 'bench-api-key-0001';
const CHANNEL = 'feed';
const HERALD = HERALD_BIN;

interface Args {
  clients: number;
  rate: number;
  duration: number;
  intervals: number[];
  pin: boolean;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { clients: 100, rate: 10, duration: 8, intervals: [1000, 250], pin: false };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (k === '--clients') a.clients = Number(argv[++i]);
    else if (k === '--rate') a.rate = Number(argv[++i]);
    else if (k === '--duration') a.duration = Number(argv[++i]);
    else if (k === '--intervals') a.intervals = String(argv[++i]).split(',').map(Number);
    else if (k === '--pin') a.pin = true;
    else throw new Error(`unknown option ${k}`);
  }
  return a;
}

const now = () => performance.timeOrigin + performance.now();

interface Tally {
  latencies: number[];
  seen: Set<number>[];
  requests: number;
  sockets: Set<Socket>;
}

function get(agent: Agent, port: number, path: string, token: string, tally: Tally): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent, headers: { authorization: `Bearer ${token}` } }, (res: IncomingMessage) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve(body));
    });
    req.on('socket', (s: Socket) => tally.sockets.add(s));
    req.on('error', reject);
    tally.requests++;
    req.end();
  });
}

function record(tally: Tally, client: number, payload: { seq: number; sentAt: number }): void {
  if (tally.seen[client]!.has(payload.seq)) return;
  tally.seen[client]!.add(payload.seq);
  tally.latencies.push(now() - payload.sentAt);
}

async function runMode(mode: string, port: number, tokens: string[], tally: Tally): Promise<() => void> {
  const stops: Array<() => void> = [];
  if (mode === 'push') {
    await Promise.all(tokens.map(async (token, i) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
      await new Promise<void>((resolve, reject) => {
        ws.on('open', () => ws.send(JSON.stringify({ type: 'connect', id: 1, token })));
        ws.on('error', reject);
        ws.on('message', (data) => {
          const f = JSON.parse(String(data)) as { type: string; message?: { payload: { seq: number; sentAt: number } } };
          if (f.type === 'connected') ws.send(JSON.stringify({ type: 'subscribe', id: 2, channel: CHANNEL }));
          else if (f.type === 'subscribed') resolve();
          else if (f.type === 'ping') ws.send('{"type":"pong"}');
          else if (f.type === 'message') record(tally, i, f.message!.payload);
        });
      });
      tally.sockets.add((ws as unknown as { _socket: Socket })._socket);
      stops.push(() => ws.terminate());
    }));
    return () => stops.forEach((s) => s());
  }
  const interval = mode.startsWith('poll-') ? Number(mode.slice(5)) : 0;
  tokens.forEach((token, i) => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    let position: { offset: number; epoch: string } | undefined;
    let stopped = false;
    const loop = async () => {
      // Spread the clients' first polls over one interval, as independent clients would be.
      if (interval) await new Promise((r) => setTimeout(r, Math.random() * interval));
      while (!stopped) {
        const q = position ? `?since=${position.offset}&epoch=${position.epoch}${interval ? '' : '&wait=25000'}` : '';
        try {
          const body = JSON.parse(await get(agent, port, `/poll/v1/channels/${CHANNEL}/messages${q}`, token, tally)) as { position: { offset: number; epoch: string }; messages: Array<{ message: { payload: { seq: number; sentAt: number } } }> };
          if (position) for (const m of body.messages) record(tally, i, m.message.payload);
          position = body.position;
        } catch {
          /* counted as a missing delivery */
        }
        if (interval) await new Promise((r) => setTimeout(r, interval));
      }
    };
    void loop();
    stops.push(() => {
      stopped = true;
      agent.destroy();
    });
  });
  // Let every poller learn its starting position before events begin.
  await new Promise((r) => setTimeout(r, interval ? interval + 200 : 500));
  return () => stops.forEach((s) => s());
}

async function publish(port: number, seq: number, agent: Agent): Promise<void> {
  const body = JSON.stringify({ channel: CHANNEL, eventType: 'tick', payload: { seq, sentAt: now() } });
  await new Promise<void>((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/api/v1/publish', method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), authorization: `Bearer ${API_KEY}` } }, (res) => {
      res.resume();
      res.on('end', () => resolve());
    });
    req.on('error', () => resolve());
    req.end(body);
  });
}

async function measure(mode: string, a: Args, dir: string) {
  const port = await freePort();
  const config = join(dir, 'herald.json');
  writeFileSync(config, JSON.stringify({
    server: { host: '127.0.0.1', port }, auth: { jwt: { hmacSecret: BENCH_SECRET } }, api: { keys: [API_KEY] },
    engine: { type: 'memory' }, log: { level: 'info' }, limits: { maxConnectionsPerIp: 100_000 },
    // Polling and pushing flat out from one IP is the load under test, not abuse to refuse.
    rateLimits: { enabled: false },
  }));
  const args = [HERALD, 'serve', '--config', config];
  const proc: ChildProcess = a.pin ? spawn('taskset', ['-c', '0', process.execPath, ...args], { stdio: ['ignore', 'pipe', 'inherit'] }) : spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve) => {
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => {
      out += String(d);
      if (out.includes('Herald listening')) resolve();
    });
  });
  const tokens = await Promise.all(Array.from({ length: a.clients }, (_, i) => makeToken(BENCH_SECRET, `client-${i}`)));
  const tally: Tally = { latencies: [], seen: tokens.map(() => new Set<number>()), requests: 0, sockets: new Set() };
  const stop = await runMode(mode, port, tokens, tally);
  const bytes0 = [...tally.sockets].reduce((n, s) => n + s.bytesRead + s.bytesWritten, 0);
  const requests0 = tally.requests;
  const cpu0 = cpuMicros(proc.pid!) ?? 0;
  const pubAgent = new Agent({ keepAlive: true, maxSockets: 1 });
  const total = Math.round(a.rate * a.duration);
  const t0 = now();
  for (let seq = 1; seq <= total; seq++) {
    const due = t0 + (seq * 1000) / a.rate;
    await new Promise((r) => setTimeout(r, Math.max(0, due - now())));
    await publish(port, seq, pubAgent);
  }
  // Give the slowest poller one more interval to collect the last events.
  await new Promise((r) => setTimeout(r, Math.max(...a.intervals, 1000) + 300));
  const elapsed = (now() - t0) / 1000;
  const cpu = (cpuMicros(proc.pid!) ?? cpu0) - cpu0;
  const bytes = [...tally.sockets].reduce((n, s) => n + s.bytesRead + s.bytesWritten, 0) - bytes0;
  const requests = tally.requests - requests0;
  stop();
  pubAgent.destroy();
  proc.kill('SIGTERM');
  await new Promise((r) => proc.once('exit', r));
  const delivered = tally.latencies.length;
  const lat = [...tally.latencies].sort((x, y) => x - y);
  const q = (p: number) => Number((lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] ?? NaN).toFixed(1));
  return {
    scenario: 'rest-vs-ws',
    mode,
    clients: a.clients,
    rate: a.rate,
    expected: total * a.clients,
    delivered,
    p50_ms: q(0.5),
    p99_ms: q(0.99),
    max_ms: q(1),
    http_requests_per_s: Math.round(requests / elapsed),
    bytes_per_event: Math.round(bytes / Math.max(1, delivered)),
    server_cpu_pct: Number(((cpu / 1e6 / elapsed) * 100).toFixed(1)),
    server_us_per_event: Math.round(cpu / Math.max(1, delivered)),
  };
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const dir = mkdtempSync(join(tmpdir(), 'herald-rvw-'));
  const modes = ['push', 'longpoll', ...a.intervals.map((p) => `poll-${p}`)];
  const rows = [];
  try {
    for (const mode of modes) {
      process.stderr.write(`${mode}: ${a.clients} clients, ${a.rate} events/s for ${a.duration}s…\n`);
      const r = await measure(mode, a, dir);
      process.stdout.write(`${JSON.stringify(r)}\n`);
      rows.push(r);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  process.stdout.write('\nmode         delivered/expected   p50 ms   p99 ms   HTTP req/s   bytes/event   server CPU %   server µs/event\n');
  for (const r of rows) {
    process.stdout.write(`${r.mode.padEnd(12)} ${`${r.delivered}/${r.expected}`.padStart(18)} ${String(r.p50_ms).padStart(8)} ${String(r.p99_ms).padStart(8)} ${String(r.http_requests_per_s).padStart(12)} ${String(r.bytes_per_event).padStart(13)} ${String(r.server_cpu_pct).padStart(14)} ${String(r.server_us_per_event).padStart(17)}\n`);
  }
}

await main();
