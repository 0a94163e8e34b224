/**
 * What a webhook backlog costs the SQLite outbox (the default engine's): `--entries` events spread
 * over `--keys` ordering keys, every key's head claimed and put back for a retry an hour away (the
 * endpoint is down), then the time of a claim (what the dispatcher runs on every poll and on every
 * commit's wake-up) and of a one-event append — both on the node's event loop. Medians of `--runs`
 * rounds of `--samples` calls each.
 *
 *   node packages/bench/dist/outbox-backlog.js [--entries 100000] [--keys 100] [--runs 3] [--samples 20]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { SqliteDb } from 'herald/internal/engine/sqlite/db.js';
import { SqliteWebhookOutbox } from 'herald/internal/engine/sqlite/webhook-outbox.js';

const { values } = parseArgs({
  options: {
    entries: { type: 'string', default: '100000' },
    keys: { type: 'string', default: '100' },
    runs: { type: 'string', default: '3' },
    samples: { type: 'string', default: '20' },
  },
});
const entries = positive('entries', values.entries);
const keys = positive('keys', values.keys);
const runs = positive('runs', values.runs);
const samples = positive('samples', values.samples);

function positive(name: string, raw: string | undefined): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) {
    process.stderr.write(`outbox-backlog: --${name} must be a positive integer, not "${raw}"\n`);
    process.exit(2);
  }
  return n;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

async function timed(f: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  await f();
  return Number(process.hrtime.bigint() - start) / 1e6;
}

async function round(run: number): Promise<{ claimMs: number; appendMs: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'herald-outbox-backlog-'));
  const db = new SqliteDb(dir, 'normal');
  try {
    const outbox = new SqliteWebhookOutbox(db, { leaseMs: 30_000, maxEntries: entries + samples + 1, maxDeadLetters: 10 });
    let n = 0;
    while (n < entries) {
      const batch = Array.from({ length: Math.min(1000, entries - n) }, () => ({ id: `e${n}`, endpoint: 'app', key: `k${n++ % keys}`, body: '{"type":"connection.opened"}' }));
      await outbox.append(batch);
      process.stderr.write(`\rrun ${run}: ${n}/${entries} events queued`);
    }
    process.stderr.write('\n');
    for (const head of await outbox.claim([{ endpoint: 'app', limit: keys }])) await outbox.retry(head, 3_600_000, 'HTTP 503');
    const claims: number[] = [];
    const appends: number[] = [];
    for (let i = 0; i < samples; i++) claims.push(await timed(() => outbox.claim([{ endpoint: 'app', limit: 16 }])));
    for (let i = 0; i < samples; i++) appends.push(await timed(() => outbox.append([{ id: `x${i}`, endpoint: 'app', key: 'k1', body: '{}' }])));
    return { claimMs: median(claims), appendMs: median(appends) };
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const results: Array<{ claimMs: number; appendMs: number }> = [];
for (let r = 1; r <= runs; r++) results.push(await round(r));
const fmt = (ms: number) => `${ms.toFixed(3)} ms`;
process.stdout.write(
  `${JSON.stringify({ entries, keys, runs, samples })}\n` +
    `claim (limit 16) median ${fmt(median(results.map((x) => x.claimMs)))}; runs: ${results.map((x) => fmt(x.claimMs)).join(', ')}\n` +
    `append (1 event) median ${fmt(median(results.map((x) => x.appendMs)))}; runs: ${results.map((x) => fmt(x.appendMs)).join(', ')}\n`,
);
