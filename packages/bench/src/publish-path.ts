/**
 * The publish path alone: server CPU per `POST /api/v1/publish` with nobody subscribed, so the
 * figure is the HTTP request, validation and the publish itself, not fan-out. `wrk` (Debian
 * package, C) drives each server in a closed loop over `--concurrency` keep-alive connections;
 * servers run in rotating order, `--runs` times each, and the report gives medians and the ratio
 * to the `ws-plain` peer (node:http with JSON.parse, no validation) measured in the same run.
 *
 *   node packages/bench/dist/publish-path.js [--duration 5] [--concurrency 4] [--runs 3] [--pin] [--log-level warn]
 *
 * Servers: `herald` (default configuration: the publish fast path), `herald-fastify`
 * (`api.publishFastPath: false`, every request through fastify) and `ws-plain`.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { cpuMicros } from './lib/proc.js';
import { BENCH_API_KEY } from './lib/token.js';
import { DEFAULT_HERALD_BIN, startServer, type ServerUnderTest } from './servers/targets.js';

interface Args {
  duration: number;
  concurrency: number;
  runs: number;
  pin: boolean;
  logLevel: string;
}

const SERVERS = ['herald', 'herald-fastify', 'ws-plain'] as const;
type Server = (typeof SERVERS)[number];

async function start(server: Server, a: Args): Promise<ServerUnderTest> {
  const fastPath = server !== 'herald-fastify';
  return startServer(server === 'ws-plain' ? 'ws-plain' : 'herald', {
    cpus: a.pin ? '0' : undefined,
    heraldBin: DEFAULT_HERALD_BIN,
    heraldWsPath: '/ws',
    heraldConfig: { api: { keys: [BENCH_API_KEY], publishFastPath: fastPath }, log: { level: a.logLevel } },
    log: (line) => process.stderr.write(`${line}\n`),
  });
}

function runWrk(args: string[], pin: boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    const w = pin ? spawn('taskset', ['-c', '1', 'wrk', ...args]) : spawn('wrk', args);
    let text = '';
    w.stdout.on('data', (d: Buffer) => (text += String(d)));
    w.on('error', (err) => reject(new Error(`wrk did not run (${err.message}): apt-get install wrk`)));
    w.on('exit', () => resolve(text));
  });
}

async function measure(server: Server, a: Args, script: string) {
  const s = await start(server, a);
  try {
    const url = s.publishUrl;
    // A short unmeasured run first, so every server is measured with its publish path compiled.
    await runWrk(['-t1', `-c${a.concurrency}`, '-d1s', '-s', script, url], a.pin);
    const cpu0 = cpuMicros(s.pid) ?? 0;
    const out = await runWrk(['-t1', `-c${a.concurrency}`, `-d${a.duration}s`, '-s', script, url], a.pin);
    const cpu = (cpuMicros(s.pid) ?? cpu0) - cpu0;
    const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0);
    const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
    if (requests === 0) throw new Error(`${server}: wrk made no requests:\n${out}`);
    return {
      server,
      requests_per_s: Math.round(Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0)),
      server_us_per_publish: Math.round((cpu / requests) * 10) / 10,
      errors: non2xx,
    };
  } finally {
    await s.stop();
  }
}

const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;

async function main(a: Args): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'herald-publish-path-'));
  const script = join(dir, 'publish.lua');
  writeFileSync(script, `wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer ${BENCH_API_KEY}"
wrk.body = '{"channel":"orders","eventType":"order.created","payload":{"seq":1,"item":"book","qty":2}}'
`);
  const results = new Map<Server, Awaited<ReturnType<typeof measure>>[]>();
  try {
    for (let r = 0; r < a.runs; r++) {
      const order = SERVERS.map((_, i) => SERVERS[(i + r) % SERVERS.length]!);
      for (const server of order) {
        process.stderr.write(`[publish-path] run ${r + 1}/${a.runs} ${server} (${a.duration}s, ${a.concurrency} connections)…\n`);
        const res = await measure(server, a, script);
        process.stdout.write(`${JSON.stringify({ scenario: 'publish-path', run: r + 1, log_level: a.logLevel, pinned: a.pin, ...res })}\n`);
        const list = results.get(server) ?? [];
        list.push(res);
        results.set(server, list);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const base = median(results.get('ws-plain')!.map((x) => x.server_us_per_publish));
  process.stdout.write(`\nserver           requests/s   server µs/publish   ÷ ws-plain   non-2xx   (medians of ${a.runs})\n`);
  for (const server of SERVERS) {
    const rs = results.get(server)!;
    const us = median(rs.map((x) => x.server_us_per_publish));
    process.stdout.write(
      `${server.padEnd(16)} ${String(median(rs.map((x) => x.requests_per_s))).padStart(10)} ${String(us).padStart(19)} ${(us / base).toFixed(2).padStart(12)} ${String(rs.reduce((n, x) => n + x.errors, 0)).padStart(9)}\n`,
    );
  }
}

const program = new Command('publish-path')
  .description('server CPU per POST /api/v1/publish (no subscribers): Herald with and without the fast path, and the ws-plain peer')
  .option('--duration <s>', 'measured seconds per run (after a 1 s warm-up)', Number, 5)
  .option('--concurrency <n>', 'wrk keep-alive connections', Number, 4)
  .option('--runs <n>', 'runs per server, rotating order; medians are reported', Number, 3)
  .option('--pin', 'server on core 0, wrk on core 1', false)
  .option('--log-level <level>', "Herald's log.level (info logs two lines per request)", 'warn');
program.parse();
await main(program.opts<Args>());
