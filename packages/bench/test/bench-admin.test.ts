/**
 * Smoke runs of the `admin` and `admin-kill` scenarios (packages/bench/src/scenarios/admin*.ts)
 * at tiny sizes, against Herald clusters started from the built CLI (dist/, which `npm test`
 * builds first), on Redis and on NATS: every admin call must come out with figures, and the
 * comparison with ratios cluster ÷ single node. No timing is asserted — the benchmark is for
 * that — only that the scenario still runs and measures what it says.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ADMIN_CALLS } from '../src/admin/calls.js';
import { requireNats, requireRedis } from '../../server/test/engine/services.js';

const redisUp = await requireRedis();
const natsUp = await requireNats();
const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));

type Line = Record<string, any>;

/** Runs `herald-bench <args>` from dist/ at tiny sizes; resolves with its JSON lines and its stderr. */
function bench(args: string[]): Promise<{ lines: Line[]; log: string }> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`);
  const tiny = ['--connections', '4', '--duration', '0.2', '--channels', '3', '--workers', '1', '--source-ips', '2', '--client', 'raw', '--no-loop-delay', '--max-other', '0'];
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [CLI, ...args, ...tiny], { maxBuffer: 16 * 2 ** 20, timeout: 120_000 }, (error, stdout, stderr) => {
      const lines = stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Line);
      if (error && lines.length === 0) reject(new Error(`${error.message}\n${stderr.slice(-4000)}`));
      else resolve({ lines, log: stderr.slice(-4000) });
    });
  });
}

const PER_CALL = ['calls', 'p50_ms', 'p99_ms', 'max_ms', 'us_per_call', 'broker_us_per_call', 'bus_msgs', 'partial', 'wrong'] as const;

describe.each([
  { engine: 'redis', up: redisUp },
  { engine: 'nats', up: natsUp },
])('admin scenario on $engine', ({ engine, up }) => {
  it.skipIf(!up)('measures every admin call on 2 nodes and on 1, with ratios', async () => {
    const cluster = `herald-${engine}-2`;
    const single = `herald-${engine}-1`;
    const { lines, log: context } = await bench(['compare', '--scenario', 'admin', '--servers', `${cluster},${single}`, '--runs', '1']);
    const summary = lines.find((l) => l.kind === 'compare')!;
    expect(summary, context).toBeDefined();
    for (const target of [cluster, single]) {
      const m = summary.medians[target];
      expect(m, context).toBeDefined();
      expect(m!.nodes, context).toBe(target === cluster ? 2 : 1);
      for (const call of ADMIN_CALLS) {
        for (const key of PER_CALL) expect(typeof m![`${call}_${key}`], `${target} ${call}_${key}\n${context}`).toBe('number');
        expect(m![`${call}_calls`] as number, `${target} ${call}`).toBeGreaterThan(0);
      }
    }
    // On the bus: one command and the peer's reply (node 1 answers its own part in process); a
    // single node and the node list ask no one.
    expect(summary.medians[cluster]!.stats_bus_msgs, context).toBe(2);
    expect(summary.medians[single]!.stats_bus_msgs, context).toBe(0);
    expect(summary.medians[cluster]!.nodes_bus_msgs, context).toBe(0);
    for (const call of ADMIN_CALLS) expect(summary.ratios[single]!, context).toHaveProperty(`${call}_p50_ms`);
  }, 90_000);
});

describe('admin-kill scenario', () => {
  it.skipIf(!redisUp)('times the admin calls from a SIGKILL until the dead node expires', async () => {
    const { lines, log: context } = await bench(['run', 'admin-kill', '--server', 'herald-redis-2']);
    const r = lines.find((l) => l.scenario === 'admin-kill')!;
    expect(r, context).toBeDefined();
    expect(typeof r.expired_after_ms, context).toBe('number');
    for (const call of ADMIN_CALLS) {
      expect(r[`${call}_dead_calls`] as number, `${call}\n${context}`).toBeGreaterThan(0);
      expect(typeof r[`${call}_dead_max_ms`], `${call}\n${context}`).toBe('number');
      expect(typeof r[`${call}_after_calls`], `${call}\n${context}`).toBe('number');
    }
  }, 90_000);
});
