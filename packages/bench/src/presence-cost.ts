/**
 * What channel presence costs per connection: one Herald node (the built CLI) on Redis or NATS,
 * `--members` connections subscribing to `--channels` channels of a namespace, measured three
 * ways in the same run:
 *
 * - `off`: the namespace without presence (the peer: what a subscription costs anyway);
 * - `on`: presence on, nobody asking for join/leave (members and counters only);
 * - `events`: presence on, and one subscriber per channel asking for join/leave (so every join and
 *   leave is also watched, encoded and sent).
 *
 * For each: the server's RSS growth per member once everyone has joined, and its CPU time per join
 * (the subscribe phase) and per leave (the unsubscribe phase), plus the engine server's CPU
 * (redis-server or nats-server, found by name) over both phases. A phase ends when the cluster's
 * presence-stats (or, with presence off, the subscribe replies) say it is done. Medians of `--runs`.
 *
 *   node packages/bench/dist/presence-cost.js [--members 2000] [--channels 20] [--runs 3] [--engines redis,nats] [--modes off,on,events]
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { HERALD_BIN } from './lib/herald-bin.js';
import { freePort } from './lib/ports.js';
import { cpuMicros, rssBytes } from './lib/proc.js';
import { BENCH_SECRET, makeToken } from './lib/token.js';

interface Args {
  members: number;
  channels: number;
  runs: number;
  engines: string[];
  modes: string[];
  redisUrl: string;
  natsUrl: string;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { members: 2000, channels: 20, runs: 3, engines: ['redis', 'nats'], modes: ['off', 'on', 'events'], redisUrl: 'redis://127.0.0.1:6379', natsUrl: 'nats://127.0.0.1:4222' };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = (): string => String(argv[++i]);
    if (k === '--members') a.members = Number(v());
    else if (k === '--channels') a.channels = Number(v());
    else if (k === '--runs') a.runs = Number(v());
    else if (k === '--engines') a.engines = v().split(',');
    else if (k === '--modes') a.modes = v().split(',');
    else if (k === '--redis') a.redisUrl = v();
    else if (k === '--nats') a.natsUrl = v();
    else if (k === '--help') {
      process.stdout.write('node packages/bench/dist/presence-cost.js [--members 2000] [--channels 20] [--runs 3] [--engines redis,nats] [--modes off,on,events] [--redis URL] [--nats URL]\n');
      process.exit(0);
    } else throw new Error(`unknown option ${k}`);
  }
  if (!(a.members >= 1 && a.channels >= 1 && a.runs >= 1)) throw new Error('--members, --channels and --runs must be at least 1');
  return a;
}

const API_KEY = 'bench-api-key-presence';

interface Result {
  engine: string;
  mode: string;
  run: number;
  members: number;
  rss_bytes_per_member: number;
  server_us_per_join: number;
  server_us_per_leave: number;
  engine_us_per_join: number;
  engine_us_per_leave: number;
  join_events_sent: number;
}

class Conn {
  private nextId = 1;
  private readonly waiting = new Map<number, (f: Record<string, unknown>) => void>();
  events = 0;

  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const f = JSON.parse(String(data)) as Record<string, unknown>;
      if (f.type === 'ping') ws.send('{"type":"pong"}');
      else if (f.type === 'join' || f.type === 'leave') this.events++;
      else if (typeof f.id === 'number') {
        this.waiting.get(f.id)?.(f);
        this.waiting.delete(f.id);
      }
    });
  }

  static async open(url: string, token: string): Promise<Conn> {
    const ws = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const c = new Conn(ws);
    const r = await c.call({ type: 'connect', token });
    if (r.type !== 'connected') throw new Error(`connect: ${JSON.stringify(r)}`);
    return c;
  }

  call(frame: Record<string, unknown>): Promise<Record<string, unknown>> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.ws.send(JSON.stringify({ ...frame, id }));
    });
  }

  close(): void {
    this.ws.terminate();
  }
}

async function startHerald(engine: string, mode: string, a: Args, dir: string): Promise<{ proc: ChildProcess; port: number; prefix: string }> {
  const port = await freePort();
  const prefix = `hbp${randomUUID().slice(0, 8)}`;
  const engineConfig = engine === 'redis' ? { type: 'redis', redis: { url: a.redisUrl, prefix } } : { type: 'nats', nats: { servers: [a.natsUrl], prefix } };
  const file = join(dir, `${engine}-${mode}.json`);
  writeFileSync(file, JSON.stringify({
    server: { host: '127.0.0.1', port },
    auth: { jwt: { hmacSecret: BENCH_SECRET } },
    api: { keys: [API_KEY] },
    engine: engineConfig,
    channels: { namespaces: { bench: { presence: mode !== 'off' } } },
    limits: { maxConnections: a.members + a.channels + 100, maxConnectionsPerIp: a.members + a.channels + 100 },
    rateLimits: { enabled: false },
    log: { level: 'info' },
  }));
  const proc = spawn(process.execPath, [HERALD_BIN, 'serve', '--config', file], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`Herald did not start: ${out}`)), 20_000);
    proc.stdout!.on('data', (d: Buffer) => {
      out += String(d);
      if (out.includes('Herald listening')) {
        clearTimeout(t);
        resolve();
      }
    });
  });
  return { proc, port, prefix };
}

/** The engine server's pid, found by name (for its CPU time); undefined when not on this machine. */
function enginePid(engine: string): number | undefined {
  try {
    const out = execFileSync('pidof', [engine === 'redis' ? 'redis-server' : 'nats-server'], { encoding: 'utf8' }).trim();
    return Number(out.split(/\s+/)[0]) || undefined;
  } catch {
    return undefined;
  }
}

async function stats(port: number, channel: string): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${port}/api/v1/channels/${channel}/presence-stats`, { headers: { authorization: `Bearer ${API_KEY}` } });
  const body = (await res.json()) as { connections?: number };
  return body.connections ?? -1;
}

/** Waits until the channels' presence-stats sum to `want` (presence modes only). */
async function settle(port: number, channels: string[], want: number): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    let sum = 0;
    for (const ch of channels) sum += await stats(port, ch);
    if (sum === want) return;
    if (Date.now() > deadline) throw new Error(`presence did not settle at ${want} (at ${sum})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Runs `fn` over `items` with at most `width` in flight. */
async function inParallel<T>(items: readonly T[], width: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

async function once(engine: string, mode: string, run: number, a: Args, dir: string): Promise<Result> {
  const { proc, port } = await startHerald(engine, mode, a, dir);
  const pid = proc.pid!;
  const epid = enginePid(engine);
  const url = `ws://127.0.0.1:${port}/ws`;
  const channels = Array.from({ length: a.channels }, (_, i) => `bench:room-${i}`);
  const conns: Conn[] = [];
  const watchers: Conn[] = [];
  try {
    // Watchers first (mode `events`), so every later join and leave is watched.
    if (mode === 'events') {
      for (const ch of channels) {
        const w = await Conn.open(url, await makeToken(BENCH_SECRET, `watcher-${ch}`));
        await w.call({ type: 'subscribe', channel: ch, presence: true });
        watchers.push(w);
      }
    }
    const tokens = await Promise.all(Array.from({ length: a.members }, (_, i) => makeToken(BENCH_SECRET, `user-${i}`, ['*'])));
    await inParallel(tokens, 64, async (t) => conns.push(await Conn.open(url, t)));
    await new Promise((r) => setTimeout(r, 500));
    const rss0 = rssBytes(pid)!;
    const presence = mode !== 'off';
    const base = watchers.length;

    let cpu = cpuMicros(pid)!;
    let ecpu = epid ? cpuMicros(epid) ?? 0 : 0;
    await inParallel(conns.map((c, i) => [c, channels[i % channels.length]!] as const), 64, ([c, ch]) => c.call({ type: 'subscribe', channel: ch }));
    if (presence) await settle(port, channels, a.members + base);
    const joinCpu = cpuMicros(pid)! - cpu;
    const joinEcpu = epid ? (cpuMicros(epid) ?? 0) - ecpu : 0;
    await new Promise((r) => setTimeout(r, 500));
    const rss1 = rssBytes(pid)!;
    const eventsSent = watchers.reduce((n, w) => n + w.events, 0);

    cpu = cpuMicros(pid)!;
    ecpu = epid ? cpuMicros(epid) ?? 0 : 0;
    await inParallel(conns.map((c, i) => [c, channels[i % channels.length]!] as const), 64, ([c, ch]) => c.call({ type: 'unsubscribe', channel: ch }));
    if (presence) await settle(port, channels, base);
    const leaveCpu = cpuMicros(pid)! - cpu;
    const leaveEcpu = epid ? (cpuMicros(epid) ?? 0) - ecpu : 0;
    const r2 = (x: number) => Math.round(x * 100) / 100;
    return {
      engine,
      mode,
      run,
      members: a.members,
      rss_bytes_per_member: Math.round((rss1 - rss0) / a.members),
      server_us_per_join: r2(joinCpu / a.members),
      server_us_per_leave: r2(leaveCpu / a.members),
      engine_us_per_join: r2(joinEcpu / a.members),
      engine_us_per_leave: r2(leaveEcpu / a.members),
      join_events_sent: eventsSent,
    };
  } finally {
    for (const c of [...conns, ...watchers]) c.close();
    proc.kill('SIGTERM');
    await new Promise((r) => proc.once('exit', r));
  }
}

const median = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const dir = mkdtempSync(join(tmpdir(), 'herald-presence-cost-'));
  const all: Result[] = [];
  try {
    for (let run = 1; run <= a.runs; run++) {
      // Modes interleaved within each run, so drift of the machine hits them alike.
      for (const engine of a.engines) {
        for (const mode of a.modes) {
          process.stderr.write(`run ${run}/${a.runs} ${engine} ${mode} (${a.members} members, ${a.channels} channels)…\n`);
          const r = await once(engine, mode, run, a, dir);
          all.push(r);
          process.stdout.write(`${JSON.stringify({ scenario: 'presence-cost', ...r })}\n`);
        }
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  process.stdout.write(`\nmedians of ${a.runs} runs, ${a.members} members over ${a.channels} channels\n`);
  process.stdout.write(`${'engine'.padEnd(7)}${'mode'.padEnd(8)}${'RSS B/member'.padStart(14)}${'µs/join'.padStart(10)}${'µs/leave'.padStart(10)}${'engine µs/join'.padStart(16)}${'engine µs/leave'.padStart(17)}\n`);
  for (const engine of a.engines) {
    for (const mode of a.modes) {
      const rs = all.filter((r) => r.engine === engine && r.mode === mode);
      const m = (k: keyof Result) => median(rs.map((r) => r[k] as number));
      process.stdout.write(
        `${engine.padEnd(7)}${mode.padEnd(8)}${String(m('rss_bytes_per_member')).padStart(14)}${String(m('server_us_per_join')).padStart(10)}${String(m('server_us_per_leave')).padStart(10)}${String(m('engine_us_per_join')).padStart(16)}${String(m('engine_us_per_leave')).padStart(17)}\n`,
      );
    }
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
