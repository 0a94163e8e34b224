/**
 * An HTTP route's call into the engine: the engine's own failure is a temporary 503
 * (`broker_unavailable`) with a fixed message — its cause (hosts, driver messages) goes to the
 * log, not to the caller. A HeraldError the call throws on purpose passes through.
 */
import type { FastifyBaseLogger } from 'fastify';
import { ErrorCode } from '@herald/protocol';
import { HeraldError } from '../errors.js';

export async function engineCall<T>(log: Pick<FastifyBaseLogger, 'error'>, what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof HeraldError) throw err;
    log.error({ err }, `${what} failed in the engine`);
    throw new HeraldError(ErrorCode.BROKER_UNAVAILABLE, `${what} failed in the engine; retry`);
  }
}
