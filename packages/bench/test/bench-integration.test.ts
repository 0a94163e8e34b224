/**
 * Smoke runs of the backend-integration scenarios (packages/bench/src/scenarios/connect.ts and
 * webhooks.ts) at tiny sizes, from the built CLI (dist/): `connect` must measure every Herald
 * variant (connect proxy, JWT-only, JWT + proxy always) in one invocation, with ratios; `webhooks`
 * must measure deliveries on every engine — SQLite, and Redis and NATS where they run — with every
 * generated event received. No timing is asserted, only that figures come out for each.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { requireNats, requireRedis } from '../../server/test/engine/services.js';

const redisUp = await requireRedis();
const natsUp = await requireNats();
const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));

type Line = Record<string, any>;

function bench(args: string[]): Promise<{ lines: Line[]; log: string }> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`);
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [CLI, ...args, '--runs', '1', '--max-other', '0'], { maxBuffer: 16 * 2 ** 20, timeout: 240_000 }, (error, stdout, stderr) => {
      const lines = stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Line);
      if (error && lines.length === 0) reject(new Error(`${error.message}\n${stderr.slice(-4000)}`));
      else resolve({ lines, log: stderr.slice(-4000) });
    });
  });
}

describe('connect scenario', () => {
  it('measures connects through the connect proxy, with a JWT, and with both, in one invocation', async () => {
    const { lines, log } = await bench(['compare', '--scenario', 'connect', '--connections', '12', '--concurrency', '4']);
    const summary = lines.find((l) => l.kind === 'compare');
    expect(summary, log).toBeDefined();
    for (const variant of ['proxy', 'jwt', 'jwt-always']) {
      const m = summary!.medians[`herald/${variant}`];
      expect(m, `${variant}\n${log}`).toBeDefined();
      expect(m.connections, `${variant}\n${log}`).toBe(12);
      expect(m.failed, `${variant}\n${log}`).toBe(0);
      for (const key of ['conns_per_s', 'handshake_p50_ms', 'handshake_p99_ms', 'server_us_per_conn']) {
        expect(typeof m[key], `${variant} ${key}\n${log}`).toBe('number');
      }
      // The backend answered exactly the measured connects where the hook is on, and nothing else.
      if (variant === 'jwt') expect(m.hooks_answered, log).toBeNull();
      else {
        expect(m.hooks_answered, `${variant}\n${log}`).toBe(12);
        expect(typeof m.backend_us_per_conn, `${variant}\n${log}`).toBe('number');
      }
    }
    expect(summary!.ratios['herald/jwt'], log).toHaveProperty('conns_per_s');
  }, 240_000);
});

describe('webhooks scenario', () => {
  const servers = ['herald', ...(redisUp ? ['herald-redis-1'] : []), ...(natsUp ? ['herald-nats-1'] : [])];
  it(`measures webhook deliveries from the outbox on ${servers.join(', ')}`, async () => {
    const { lines, log } = await bench(['compare', '--scenario', 'webhooks', '--servers', servers.join(','), '--connections', '4', '--duration', '0.5', '--rate', '20']);
    const summary = lines.find((l) => l.kind === 'compare');
    expect(summary, log).toBeDefined();
    for (const server of servers) {
      const m = summary!.medians[server];
      expect(m, `${server}\n${log}`).toBeDefined();
      expect(m.generated, `${server}\n${log}`).toBeGreaterThan(0);
      expect(m.delivered, `${server}\n${log}`).toBe(m.generated);
      expect(m.missing, `${server}\n${log}`).toBe(0);
      for (const key of ['delivered_per_s', 'generated_per_s', 'peak_depth', 'burst_lag_p50_ms', 'burst_lag_p99_ms', 'paced_lag_p50_ms', 'paced_lag_p99_ms', 'server_us_per_event']) {
        expect(typeof m[key], `${server} ${key}\n${log}`).toBe('number');
      }
    }
  }, 240_000);
});
