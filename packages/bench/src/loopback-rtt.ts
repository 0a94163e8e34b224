/**
 * The latency floor of the machine itself: a trivial Node HTTP server (answers `{"ok":true}`, no
 * work) and a client posting to it at a fixed rate over one keep-alive connection, pinned to
 * different cores like `bench --pin`. Every publish-to-receive latency in the scenarios contains
 * one such hop (the publish request) plus a WebSocket write, so its percentiles are the floor
 * under any server's — on a VM whose idle cores are woken by the host they can be milliseconds.
 *
 *   node packages/bench/dist/loopback-rtt.js [--rate 100] [--count 1000] [--runs 3] [--no-pin]
 */
import { execFileSync, fork } from 'node:child_process';
import { Agent, createServer, request } from 'node:http';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { median, round } from './lib/stats.js';

interface Options {
  rate: number;
  count: number;
  runs: number;
  pin: boolean;
}

function serverMain(): void {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"ok":true}');
    });
  });
  server.listen(0, '127.0.0.1', () => process.send?.((server.address() as { port: number }).port));
}

function oneRun(port: number, opts: Options): Promise<number[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const latencies: number[] = [];
  const start = performance.now();
  return new Promise((resolve, reject) => {
    let sent = 0;
    const fire = (): void => {
      const t0 = performance.now();
      const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/', agent, headers: { 'content-type': 'application/json', 'content-length': 2 } }, (res) => {
        res.resume();
        res.on('end', () => {
          latencies.push(performance.now() - t0);
          if (latencies.length === opts.count) {
            agent.destroy();
            resolve(latencies);
          }
        });
      });
      req.on('error', reject);
      req.end('{}');
      // Open loop on a fixed schedule, like the bench publisher.
      if (++sent < opts.count) setTimeout(fire, Math.max(0, (sent * 1000) / opts.rate - (performance.now() - start)));
    };
    fire();
  });
}

async function main(opts: Options): Promise<void> {
  const server = fork(fileURLToPath(import.meta.url), ['--server']);
  const port = await new Promise<number>((resolve) => server.once('message', (m) => resolve(Number(m))));
  if (opts.pin) {
    execFileSync('taskset', ['-pc', '0', String(server.pid)], { stdio: 'ignore' });
    execFileSync('taskset', ['-pc', '1', String(process.pid)], { stdio: 'ignore' });
  }
  const keys = ['p50', 'p90', 'p99', 'p999', 'max'] as const;
  const runs: Record<(typeof keys)[number], number>[] = [];
  try {
    for (let r = 0; r < opts.runs; r++) {
      const l = (await oneRun(port, opts)).sort((a, b) => a - b);
      const q = (p: number) => round(l[Math.min(l.length - 1, Math.floor(p * l.length))]!, 3);
      const row = { p50: q(0.5), p90: q(0.9), p99: q(0.99), p999: q(0.999), max: round(l[l.length - 1]!, 3) };
      runs.push(row);
      process.stderr.write(`[loopback-rtt] run ${r + 1}/${opts.runs}: p50 ${row.p50} p99 ${row.p99} max ${row.max} ms\n`);
    }
  } finally {
    server.kill();
  }
  const med = Object.fromEntries(keys.map((k) => [`${k}_ms`, median(runs.map((r) => r[k]))]));
  console.log(JSON.stringify({ kind: 'loopback-rtt', rate: opts.rate, count: opts.count, runs: opts.runs, pinned: opts.pin, ...med }));
}

if (process.argv[2] === '--server') serverMain();
else {
  const program = new Command('loopback-rtt')
    .description('request/response latency of a trivial Node HTTP server over loopback: the floor under every latency figure')
    .option('--rate <n>', 'requests per second', Number, 100)
    .option('--count <n>', 'requests per run', Number, 1000)
    .option('--runs <n>', 'runs; medians are reported', Number, 3)
    .option('--no-pin', 'do not pin server and client to cores 0 and 1');
  program.parse();
  await main(program.opts<Options>());
}
