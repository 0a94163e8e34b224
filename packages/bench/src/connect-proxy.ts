/**
 * Connects per second with Herald's connect proxy hook against JWT-only connects, measured in one
 * invocation: Herald (pinned to one core) with `proxy.connect.url` pointing at a trivial backend
 * on loopback (its own process, answering each hook at once), and a load generator that opens
 * connections — WebSocket upgrade, `connect`, wait for `connected`, close — `--concurrency` at a
 * time. Modes alternate run by run on the same server: JWT connects (a token, so the hook is not
 * asked) and proxied connects (no token). Besides connects/s it reports Herald's CPU time per
 * connect (user + system, from /proc), which does not depend on which process limited the rate.
 *
 *   node packages/bench/dist/connect-proxy.js [--connections 3000] [--concurrency 50] [--runs 3] [--no-pin]
 */
import { execFileSync, fork } from 'node:child_process';
import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { WebSocket } from 'ws';
import { HERALD_BIN } from './lib/herald-bin.js';
import { cpuMicros } from './lib/proc.js';
import { median, round } from './lib/stats.js';
import { makeToken } from './lib/token.js';
import { startServer } from './servers/targets.js';

interface Options {
  connections: number;
  concurrency: number;
  runs: number;
  pin: boolean;
}

function backendMain(): void {
  let n = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ result: { user: `p${++n}`, channels: ['bench:*'] } }));
    });
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1', () => process.send?.((server.address() as { port: number }).port));
}

/** One connection's life; resolves once `connected` arrived and the socket closed. */
function connectOnce(url: string, token: string | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.on('open', () => ws.send(JSON.stringify({ type: 'connect', id: 1, ...(token ? { token } : {}) })));
    ws.on('message', (data) => {
      const f = JSON.parse(String(data)) as { type: string; error?: unknown };
      if (f.type === 'connected') ws.close();
      else if (f.type === 'error') reject(new Error(`connect refused: ${JSON.stringify(f.error)}`));
    });
    ws.on('close', () => resolve());
    ws.on('error', reject);
  });
}

async function oneRun(url: string, tokens: string[] | undefined, opts: Options, pid: number): Promise<{ rate: number; cpuUsPerConnect: number }> {
  let next = 0;
  const cpu0 = cpuMicros(pid) ?? 0;
  const start = performance.now();
  const worker = async (): Promise<void> => {
    while (next < opts.connections) {
      const i = next++;
      await connectOnce(url, tokens?.[i % tokens.length]);
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, worker));
  const rate = opts.connections / ((performance.now() - start) / 1000);
  return { rate, cpuUsPerConnect: ((cpuMicros(pid) ?? 0) - cpu0) / opts.connections };
}

async function main(opts: Options): Promise<void> {
  const cores = Number(execFileSync('nproc').toString().trim());
  const pin = opts.pin && cores >= 2;
  const backend = fork(fileURLToPath(import.meta.url), ['--backend'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const backendPort = await new Promise<number>((resolve) => backend.once('message', (p) => resolve(p as number)));
  const server = await startServer('herald', {
    heraldBin: HERALD_BIN,
    heraldWsPath: '/ws',
    cpus: pin ? '0' : undefined,
    heraldConfig: { proxy: { connect: { url: `http://127.0.0.1:${backendPort}/connect`, timeoutMs: 5000 }, maxInFlight: 4096, maxInFlightPerConnection: 16 } },
    log: (line) => process.stderr.write(`${line}\n`),
  });
  // Distinct users, so `limits.maxConnectionsPerUser` never refuses the JWT mode.
  const tokens = await Promise.all(Array.from({ length: Math.min(opts.connections, 500) }, (_, i) => makeToken(server.secret, `j${i}`, ['bench:*'])));
  const rates: Record<'jwt' | 'proxy', number[]> = { jwt: [], proxy: [] };
  const cpu: Record<'jwt' | 'proxy', number[]> = { jwt: [], proxy: [] };
  try {
    await oneRun(server.wsUrl, tokens, { ...opts, connections: Math.min(500, opts.connections) }, server.pid); // warm-up
    for (let r = 0; r < opts.runs; r++) {
      for (const mode of ['jwt', 'proxy'] as const) {
        const run = await oneRun(server.wsUrl, mode === 'jwt' ? tokens : undefined, opts, server.pid);
        rates[mode].push(run.rate);
        cpu[mode].push(run.cpuUsPerConnect);
      }
      process.stderr.write(`run ${r + 1}: jwt ${round(rates.jwt.at(-1)!)}/s ${round(cpu.jwt.at(-1)!)} µs, proxy ${round(rates.proxy.at(-1)!)}/s ${round(cpu.proxy.at(-1)!)} µs\n`);
    }
  } finally {
    await server.stop();
    backend.kill();
  }
  const jwt = median(rates.jwt);
  const proxy = median(rates.proxy);
  console.log(JSON.stringify({ connections: opts.connections, concurrency: opts.concurrency, runs: opts.runs, pinned: pin, jwtConnectsPerSec: round(jwt), proxyConnectsPerSec: round(proxy), ratio: round(proxy / jwt, 3), heraldCpuUsPerConnect: { jwt: round(median(cpu.jwt)), proxy: round(median(cpu.proxy)) } }));
}

if (process.argv.includes('--backend')) {
  backendMain();
} else {
  const program = new Command()
    .name('connect-proxy')
    .description('Connects per second with the connect proxy hook against JWT-only connects')
    .option('--connections <n>', 'connections per run and mode', (v) => Number(v), 3000)
    .option('--concurrency <n>', 'connections opened at a time', (v) => Number(v), 50)
    .option('--runs <n>', 'runs per mode (alternating)', (v) => Number(v), 3)
    .option('--no-pin', 'do not pin Herald to core 0');
  program.parse();
  main(program.opts<Options>()).catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
