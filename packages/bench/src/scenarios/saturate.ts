/**
 * saturate: the fanout layout (N subscribers on one channel) at a rising rate. Step k publishes
 * at rate × 1.5^k for `--duration` seconds (default 3) on the same connections (seqs continue
 * from step to step), and the steps stop at the first one that lost a delivery, whose p99 passed
 * `--max-p99` ms (default 50), or in which the loadgen was the limit (its core above 90 %, or the
 * publisher more than 10 % behind its schedule), or after `--steps` steps (default 12). The run
 * line reports the best passing step (highest deliveries/s with no loss and p99 within the bound)
 * under the standard keys, every step in `steps`, and why it stopped in `stop_reason`.
 */
import { round } from '../lib/stats.js';
import { measurePublishing, publishPlan, withConnections } from './publishing.js';
import { SeriesRecorder, type RunResult, type Scenario } from './scenario.js';

const STEP_FACTOR = 1.5;
/** The loadgen counts as the limit once its core is this busy. */
const LOADGEN_LIMIT_PCT = 90;
/** …or once this share of the publishes went out late. */
const LATE_LIMIT = 0.1;

type StopReason = 'loss' | 'p99' | 'loadgen' | 'max_steps';

interface Step {
  rate: number;
  deliveries_per_s: number | null;
  p99_ms: number | null;
  lost: number | null;
  cpu_pct: number;
  loadgen_core_pct: number;
  publish_late: number;
}

function stopReason(r: RunResult, maxP99Ms: number): StopReason | undefined {
  if ((r.lost ?? 0) > 0) return 'loss';
  if ((r.p99_ms ?? 0) > maxP99Ms) return 'p99';
  const late = Number(r.publish_late ?? 0) / Math.max(1, Number(r.published ?? 0));
  if (Number(r.loadgen_core_pct ?? 0) >= LOADGEN_LIMIT_PCT || late > LATE_LIMIT) return 'loadgen';
  return undefined;
}

export const saturate: Scenario = {
  name: 'saturate',
  summary: 'fanout at rate ×1.5 per step until loss, p99 > --max-p99 or the loadgen limits',
  defaults: { connections: 500, rate: 10, durationS: 3, maxP99Ms: 50, maxSteps: 12 },
  async run(ctx) {
    const { options } = ctx;
    const maxP99Ms = options.maxP99Ms ?? 50;
    const maxSteps = Math.max(1, options.maxSteps ?? 12);
    const plan = publishPlan('single', options);
    return withConnections(ctx, plan, async (loadgen, opened) => {
      const recorder = new SeriesRecorder();
      const steps: Step[] = [];
      let best: RunResult | undefined;
      let last: RunResult | undefined;
      let reason: StopReason = 'max_steps';
      let seqOffset = 0;
      for (let k = 0; k < maxSteps; k++) {
        const rate = round(options.rate * STEP_FACTOR ** k, 1);
        ctx.progress(`step ${k + 1}/${maxSteps}: ${rate} publishes/s for ${options.durationS} s`);
        const { result, published } = await measurePublishing(ctx, 'saturate', loadgen, opened, plan, { rate, durationS: options.durationS, delivery: options.delivery, seqOffset, recorder });
        seqOffset += published.sent;
        last = result;
        steps.push({
          rate,
          deliveries_per_s: result.deliveries_per_s,
          p99_ms: result.p99_ms,
          lost: result.lost,
          cpu_pct: result.cpu_pct,
          loadgen_core_pct: Number(result.loadgen_core_pct),
          publish_late: Number(result.publish_late),
        });
        const stop = stopReason(result, maxP99Ms);
        ctx.progress(`step ${k + 1}: ${result.deliveries_per_s} deliveries/s, p99 ${result.p99_ms} ms, lost ${result.lost}${stop ? ` → stop (${stop})` : ''}`);
        if (stop === 'loss' || stop === 'p99') {
          reason = stop;
          break;
        }
        // A step the loadgen limited still counts as sustained: the server kept up with it.
        if (!best || (result.deliveries_per_s ?? 0) > (best.deliveries_per_s ?? 0)) best = result;
        if (stop === 'loadgen') {
          reason = stop;
          break;
        }
      }
      // No step passed: report the first one, which failed.
      const chosen = best ?? last!;
      return {
        ...chosen,
        scenario: 'saturate',
        duration_s: options.durationS,
        // Past the bound (loss, p99), whichever side was busier in the failing step is the limit.
        limited_by: reason === 'loadgen' ? 'loadgen' : reason === 'max_steps' ? chosen.limited_by : last!.limited_by,
        stop_reason: reason,
        sustained: best !== undefined,
        max_p99_bound_ms: maxP99Ms,
        steps,
        series: recorder.series,
      } satisfies RunResult;
    });
  },
};
