/**
 * The fuzzer's own detectors, against a Herald with an injected fault (packages/bench/test/fixtures/herald-faulty.mjs
 * wraps the real CLI): a server that exits mid-run is reported as a crash with the inputs that
 * preceded it, and one that blocks its event loop shows up as a bystander stall and unanswered
 * frames. Without these, a fuzz run that finds nothing would prove nothing. The runs send valid
 * inputs only, so the injected fault is the only one.
 */
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runFuzz } from '../src/fuzz/run.js';
import { fileURLToPath } from 'node:url';

const FAULTY = fileURLToPath(new URL('./fixtures/herald-faulty.mjs', import.meta.url));
const out = () => join(mkdtempSync(join(tmpdir(), 'herald-fuzz-harness-')), 'report.json');

describe('fuzz harness', () => {
  it('reports a server exit as a crash, with the last inputs and the server output in the report', async () => {
    const file = out();
    const s = await runFuzz({ seed: 3, frames: 20_000, rate: 500, connections: 6, durationMs: 60_000, out: file, cli: FAULTY, validOnly: true, serverEnv: { FUZZ_FAULT: 'exit', FUZZ_FAULT_AFTER: '120' } });
    expect(s.crashes).toBe(1);
    expect(s.ok).toBe(false);
    expect(s.crash).toMatchObject({ code: 70 });
    expect(s.crash!.lastInputs.length).toBeGreaterThan(0);
    expect(s.inputs.total).toBeLessThan(20_000);
    expect(existsSync(file)).toBe(true);
    const report = JSON.parse(readFileSync(file, 'utf8'));
    expect(report.crash.exit.code).toBe(70);
    expect(report.lastInputs.length).toBeGreaterThan(0);
    expect(report.lastInputs.at(-1)).toHaveProperty('label');
  }, 90_000);

  it('reports a blocked event loop: the bystander stalls and frames go unanswered', async () => {
    const s = await runFuzz({
      seed: 4, frames: 1500, rate: 300, connections: 6, durationMs: 60_000, out: out(), cli: FAULTY, validOnly: true,
      serverEnv: { FUZZ_FAULT: 'stall', FUZZ_FAULT_AFTER: '120', FUZZ_FAULT_MS: '4000' },
      stallMs: 1000, answerTimeoutMs: 2000,
    });
    expect(s.crashes).toBe(0);
    expect(s.bystander.latencyMs.max).toBeGreaterThan(1000);
    expect(s.anomalies['bystander-stall'] ?? 0).toBeGreaterThan(0);
    expect((s.anomalies['no-answer'] ?? 0) + (s.anomalies.unresponsive ?? 0)).toBeGreaterThan(0);
  }, 90_000);
});
