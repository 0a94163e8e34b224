/**
 * A short, seeded run of the protocol fuzzer (packages/bench/src/fuzz/) against a Herald started from the built CLI
 * (dist/, which `npm test` builds first): the whole systematic sweep — every client frame type ×
 * every field × every mutation class, the WebSocket-layer cases, every HTTP route, the raw
 * upgrade and framing cases — then random inputs, while a bystander client receives a steady
 * stream of publishes. `npm run fuzz` runs the same thing for longer.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runFuzz, type FuzzSummary } from '../src/fuzz/run.js';

/** Safety bound for the bystander's publish-to-delivery latency: far above what a healthy run shows, on a busy machine. */
const LATENCY_BOUND_MS = 5000;

let summary: FuzzSummary;

function context(): string {
  const { crash, anomalies, bystander, report } = summary;
  return `full report: ${report}\n${JSON.stringify({ crash, anomalies, bystander }, null, 1)}`;
}

describe('protocol fuzzer, short seeded run', () => {
  beforeAll(async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'herald-fuzz-test-')), 'report.json');
    summary = await runFuzz({ seed: 11, frames: 3000, rate: 1000, connections: 12, durationMs: 90_000, out, stallMs: LATENCY_BOUND_MS });
  }, 180_000);

  it('sends the whole sweep and a few thousand inputs without crashing the server', () => {
    expect(summary.crashes, context()).toBe(0);
    expect(summary.inputs.sweepComplete, context()).toBe(true);
    expect(summary.inputs.total, context()).toBeGreaterThanOrEqual(3000);
  });

  it('costs the bystander nothing: every accepted publish delivered in order, its connection kept, latency bounded', () => {
    const b = summary.bystander;
    expect(b.published, context()).toBeGreaterThan(0);
    expect(b.lost, context()).toBe(0);
    expect(b.gaps, context()).toBe(0);
    expect(b.closed, context()).toBeNull();
    expect(b.latencyMs.max, context()).toBeLessThan(LATENCY_BOUND_MS);
  });

  it('still answers /healthz after the run', () => {
    expect(summary.healthzAfter, context()).toBe(true);
  });

  it('answers every input as documented: no internal errors, no unanswered frames, protocol errors close the connection, every HTTP error in Herald\'s body', () => {
    const a = summary.anomalies;
    expect(a['internal-error'] ?? 0, context()).toBe(0);
    expect(a['undocumented-error'] ?? 0, context()).toBe(0);
    expect(a['no-answer'] ?? 0, context()).toBe(0);
    expect(a['expected-close'] ?? 0, context()).toBe(0);
    expect(a['server-bad-frame'] ?? 0, context()).toBe(0);
  });
});
