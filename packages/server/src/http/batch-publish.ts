/**
 * `POST /api/v1/publish/batch` without holding the event loop: a batch of filtered broadcasts
 * over many connections can take seconds of fan-out, and nothing else — a bystander's pong,
 * another request — would run meanwhile. The messages are started in slices, and between slices
 * the event loop is free. A slice is sized from the work the previous one cost: the time spent
 * starting its messages plus the fan-out they triggered (which may run later, after an engine's
 * await or commit; the hub times fan-out while held). Waiting — for the engine, for a commit's
 * fsync, for other work — is not the batch's cost and does not shrink the slices.
 *
 * Order and writes stay as for an unsliced batch: every message is handed to `publish` in
 * order (each takes the same steps, so messages to one channel or user keep their order), and the
 * hub holds the fan-out frames until the batch ends, so a connection gets the batch in one write.
 */
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { ErrorCode } from '@herald/protocol';
import type { ErrorBody } from '@herald/protocol';
import { HeraldError } from '../errors.js';
import type { WriteScheduler } from '../write-path.js';
import type { PublishOps, PublishRequest, PublishResult } from '../publishing.js';

/** Long enough to amortise a turn of the event loop, short enough that a pong is never noticeably late. */
const SLICE_MS = 10;
/** The first slice, before anything is known about the cost of these messages. */
const FIRST_SLICE = 8;
const MAX_GROWTH = 8;

export type BatchResult = PublishResult | { error: ErrorBody };

/** `hub`: the fan-out's hold (frames of the batch leave together) and its timing of held fan-out. */
export async function publishBatch(publishing: Pick<PublishOps, 'publish'>, hub: Pick<WriteScheduler, 'hold' | 'release' | 'heldFanoutMs'>, messages: readonly PublishRequest[]): Promise<BatchResult[]> {
  const results: Array<Promise<BatchResult>> = [];
  const start = (m: PublishRequest): Promise<BatchResult> =>
    publishing.publish(m).catch((err: unknown) => {
      const e = err instanceof HeraldError ? err : new HeraldError(ErrorCode.INTERNAL);
      return { error: e.toBody() };
    });
  hub.hold();
  try {
    let size = FIRST_SLICE;
    for (let i = 0; i < messages.length; ) {
      const began = performance.now();
      const fanoutBefore = hub.heldFanoutMs;
      const end = Math.min(messages.length, i + size);
      for (; i < end; i++) results.push(start(messages[i]!));
      if (i === messages.length) break;
      const startedIn = performance.now() - began;
      // Continuations of this slice (fan-out after an await) run before this resumes; timers
      // and I/O get their turn.
      await yieldToEventLoop();
      const cost = startedIn + (hub.heldFanoutMs - fanoutBefore);
      // Aim the next slice at SLICE_MS; grow boldly (cheap batches finish in a few slices, and
      // a SQLite batch in a few group commits) but shrink at once after an expensive slice.
      size = Math.max(1, Math.min(size * MAX_GROWTH, Math.floor((size * SLICE_MS) / Math.max(cost, 0.01))));
    }
    return await Promise.all(results);
  } finally {
    hub.release();
  }
}
