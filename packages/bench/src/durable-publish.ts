/**
 * Durable publish throughput: how many publishes per second the HTTP API acknowledges when each
 * must be committed to the embedded SQLite store first, compared in the same run with the memory
 * engine (no durability) as the baseline. The load comes from `wrk` (Debian package; a C load
 * generator, so the client is not the limit): `--concurrency` keep-alive connections in a closed
 * loop for `--duration` seconds, single publishes and batches of 10 (`/api/v1/publish/batch`).
 *
 *   node packages/bench/dist/durable-publish.js [--duration 8] [--concurrency 64] [--runs 3] [--pin] [--batches 1,10]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cpuMicros } from './lib/proc.js';
import { freePort } from './lib/ports.js';
import { HERALD_BIN } from './lib/herald-bin.js';

interface Args {
  duration: number;
  concurrency: number;
  runs: number;
  pin: boolean;
  modes: string[];
  batches: number[];
}

function parseArgs(argv: string[]): Args {
  const a: Args = { duration: 8, concurrency: 64, runs: 3, pin: false, modes: ['memory', 'sqlite-full', 'sqlite-normal'], batches: [1, 10] };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (k === '--duration') a.duration = Number(argv[++i]);
    else if (k === '--concurrency') a.concurrency = Number(argv[++i]);
    else if (k === '--runs') a.runs = Number(argv[++i]);
    else if (k === '--pin') a.pin = true;
    else if (k === '--modes') a.modes = String(argv[++i]).split(',');
    else if (k === '--batches') a.batches = String(argv[++i]).split(',').map(Number);
    else throw new Error(`unknown option ${k}`);
  }
  return a;
}

const API_KEY = 'bench-api-key-0001';
const HERALD = HERALD_BIN;

async function startHerald(mode: string, port: number, dir: string, pin: boolean): Promise<ChildProcess> {
  const engine = mode === 'memory' ? { type: 'memory' } : { type: 'sqlite', sqlite: { dataDir: join(dir, mode), synchronous: mode.split('-')[1] } };
  const config = join(dir, `${mode}.json`);
  writeFileSync(config, JSON.stringify({
    server: { host: '127.0.0.1', port },
    auth: { jwt: { hmacSecret: 'bench-secret-0123456789abcdef-0123456789' } },
    api: { keys: [API_KEY] },
    engine,
    log: { level: 'info' },
    // wrk publishes with one API key as fast as it can: measure the store, not rateLimits.apiKey.
    rateLimits: { enabled: false },
  }));
  const args = [HERALD, 'serve', '--config', config];
  const proc = pin ? spawn('taskset', ['-c', '0', process.execPath, ...args], { stdio: ['ignore', 'pipe', 'inherit'] }) : spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`no start: ${out}`)), 15_000);
    proc.stdout!.on('data', (d: Buffer) => {
      out += String(d);
      if (out.includes('Herald listening')) {
        clearTimeout(t);
        resolve();
      }
    });
  });
  return proc;
}

/** wrk script: single publishes, or batches of `batch` messages, to 16 channels. */
function wrkScript(batch: number): string {
  const one = `'{"channel":"orders:' .. (n % 16) .. '","eventType":"order.created","payload":{"seq":' .. n .. ',"item":"book"},"delivery":"at-least-once"}'`;
  const body = batch === 1
    ? `n = n + 1; return wrk.format(nil, "/api/v1/publish", nil, ${one})`
    : `local parts = {}; for i = 1, ${batch} do n = n + 1; parts[i] = ${one} end; return wrk.format(nil, "/api/v1/publish/batch", nil, '{"messages":[' .. table.concat(parts, ",") .. ']}')`;
  return `wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer ${API_KEY}"
n = 0
request = function() ${body} end
`;
}

function toMs(v: string): number {
  const m = /([\d.]+)(us|ms|s)/.exec(v);
  if (!m) return NaN;
  const x = Number(m[1]);
  return m[2] === 'us' ? x / 1000 : m[2] === 's' ? x * 1000 : x;
}

async function measure(mode: string, batch: number, a: Args, dir: string) {
  const port = await freePort();
  const proc = await startHerald(mode, port, dir, a.pin);
  const script = join(dir, `wrk-${batch}.lua`);
  writeFileSync(script, wrkScript(batch));
  const cpu0 = cpuMicros(proc.pid!) ?? 0;
  const wrkArgs = ['-t1', `-c${a.concurrency}`, `-d${a.duration}s`, '--latency', '-s', script, `http://127.0.0.1:${port}`];
  const out = await new Promise<string>((resolve, reject) => {
    const w = a.pin ? spawn('taskset', ['-c', '1', 'wrk', ...wrkArgs]) : spawn('wrk', wrkArgs);
    let text = '';
    w.stdout.on('data', (d: Buffer) => (text += String(d)));
    w.on('error', reject);
    w.on('exit', () => resolve(text));
  });
  const cpu = (cpuMicros(proc.pid!) ?? cpu0) - cpu0;
  proc.kill('SIGTERM');
  await new Promise((r) => proc.once('exit', r));
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const errors = non2xx + Number(/Socket errors:.*timeout (\d+)/.exec(out)?.[1] ?? 0);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0);
  const ok = (requests - non2xx) * batch;
  return {
    mode,
    batch,
    publishes_per_s: Math.round(rps * batch * (requests ? (requests - non2xx) / requests : 0)),
    p50_ms: toMs(/50%\s+(\S+)/.exec(out)?.[1] ?? ''),
    p99_ms: toMs(/99%\s+(\S+)/.exec(out)?.[1] ?? ''),
    server_us_per_publish: Math.round(cpu / Math.max(1, ok)),
    errors,
  };
}

const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const dir = mkdtempSync(join(tmpdir(), 'herald-durable-'));
  const results: Record<string, Awaited<ReturnType<typeof measure>>[]> = {};
  const cases = a.modes.flatMap((mode) => a.batches.map((batch) => ({ mode, batch, key: `${mode} ×${batch}` })));
  try {
    for (let r = 0; r < a.runs; r++) {
      // Rotate the order so drift on a noisy machine hits every case alike.
      const order = cases.map((_, i) => cases[(i + r) % cases.length]!);
      for (const c of order) {
        process.stderr.write(`run ${r + 1}/${a.runs} ${c.key} (${a.duration}s, ${a.concurrency} connections)…\n`);
        const res = await measure(c.mode, c.batch, a, dir);
        process.stdout.write(`${JSON.stringify({ scenario: 'durable-publish', run: r + 1, ...res })}\n`);
        (results[c.key] ??= []).push(res);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  process.stdout.write('\ncase                 publishes/s   p50 ms   p99 ms   server µs/publish   vs memory (same batch)   errors\n');
  for (const c of cases) {
    const rs = results[c.key]!;
    const pps = median(rs.map((x) => x.publishes_per_s));
    const base = median(results[`memory ×${c.batch}`]?.map((x) => x.publishes_per_s) ?? [pps]);
    process.stdout.write(
      `${c.key.padEnd(20)} ${String(pps).padStart(11)} ${String(median(rs.map((x) => x.p50_ms))).padStart(8)} ${String(median(rs.map((x) => x.p99_ms))).padStart(8)} ${String(median(rs.map((x) => x.server_us_per_publish))).padStart(19)} ${(pps / base).toFixed(2).padStart(24)} ${String(rs.reduce((n, x) => n + x.errors, 0)).padStart(8)}\n`,
    );
  }
}

await main();
