/**
 * What the stream ingestors share: parsing and validating one ingested publish request, handing
 * it to the node, and deciding what the stream should do with the entry afterwards.
 *
 * A record is the JSON object
 *   {"channel"|"user"|"broadcast": …, "filter"?: …, "delivery"?: …, "envelope": {msgId, timestamp,
 *    source, eventType, version, payload}}
 * The envelope is checked against `packages/protocol/schemas/envelope.schema.json`. Its `timestamp` is the producer's;
 * the delivered envelope carries the time Herald accepted the message, like every publish.
 *
 * Outcomes, and what the ingestors do with them:
 * - `published` / `duplicate`: the node accepted the message (or had accepted this msgId before):
 *   acknowledge the entry to the stream — only now.
 * - `invalid`: it can never be published (bad JSON, envelope, audience, filter, size…): count it,
 *   log it, move it to the dead-letter stream when one is configured, and acknowledge it so it does
 *   not come back forever.
 * - `retry`: a temporary failure (broker unavailable, node shutting down, overloaded): leave the
 *   entry unacknowledged so the stream delivers it again later.
 */
import type { Registry } from 'prom-client';
import { Counter } from 'prom-client';
import { ErrorCode } from '@herald/protocol';
import type { TagFilter } from '@herald/protocol';
import type { DeliveryMode } from '../config.js';
import { HeraldError } from '../errors.js';
import type { HeraldNode, PublishRequest } from '../node.js';

/**
 * What ingestion needs of a node: its limits and envelope schema to check a record, a channel's
 * history to recognise a redelivery, and publishing.
 */
export type IngestNode = Pick<HeraldNode, 'config' | 'schemas' | 'historyConfig' | 'broker' | 'publish'>;

/** An ingestor's node: ingestion, plus the registry its counter goes on. */
export type IngestorNode = IngestNode & Pick<HeraldNode, 'metrics'>;
import { exceedsJsonDepth } from '../json-depth.js';

export type IngestOutcome =
  | { kind: 'published'; msgId: string }
  | { kind: 'duplicate'; msgId: string }
  | { kind: 'invalid'; code: string; reason: string; msgId?: string }
  | { kind: 'retry'; error: Error; msgId: string };

export type ParsedRecord = { ok: true; request: PublishRequest } | { ok: false; code: string; reason: string; msgId?: string };

const RECORD_KEYS = new Set(['channel', 'user', 'broadcast', 'filter', 'delivery', 'envelope']);
const DELIVERY_MODES = new Set<DeliveryMode>(['at-most-once', 'at-least-once']);

function invalid(code: string, reason: string, msgId?: string): ParsedRecord {
  return { ok: false, code, reason, ...(msgId !== undefined ? { msgId } : {}) };
}

/** Parses one record's JSON text into the publish request it asks for. */
export function parseRecord(node: Pick<IngestNode, 'config' | 'schemas'>, text: string | undefined): ParsedRecord {
  if (text === undefined) return invalid(ErrorCode.BAD_REQUEST, 'the entry has no "message" field');
  // Same limit as the HTTP API: a record nested too deep could never be published (serializing it
  // would overflow the stack), so it is refused here instead of being retried forever.
  const maxDepth = node.config.limits.maxJsonDepth;
  if (exceedsJsonDepth(text, maxDepth)) return invalid(ErrorCode.BAD_REQUEST, `the message nests objects and arrays deeper than limits.maxJsonDepth (${maxDepth})`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return invalid(ErrorCode.INVALID_JSON, 'the message is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return invalid(ErrorCode.BAD_REQUEST, 'the message must be a JSON object');
  const rec = value as Record<string, unknown>;
  const unknown = Object.keys(rec).filter((k) => !RECORD_KEYS.has(k));
  if (unknown.length > 0) return invalid(ErrorCode.BAD_REQUEST, `unknown field ${JSON.stringify(unknown[0])}`);
  const validate = node.schemas.envelope;
  if (!validate(rec.envelope)) {
    const e = validate.errors?.[0];
    const where = e?.instancePath ? `envelope${e.instancePath.replace(/\//g, '.')}` : 'envelope';
    const what = e?.params && 'additionalProperty' in e.params ? `unknown field "${String(e.params.additionalProperty)}"` : e?.message ?? 'invalid';
    const msgId = typeof (rec.envelope as { msgId?: unknown } | undefined)?.msgId === 'string' ? (rec.envelope as { msgId: string }).msgId : undefined;
    return invalid(ErrorCode.INVALID_ENVELOPE, `${where}: ${what}`, msgId);
  }
  const env = rec.envelope as { msgId: string; source: string; eventType: string; version: string; payload: unknown };
  if (rec.channel !== undefined && typeof rec.channel !== 'string') return invalid(ErrorCode.BAD_REQUEST, '"channel" must be a string', env.msgId);
  if (rec.user !== undefined && (typeof rec.user !== 'string' || rec.user === '')) return invalid(ErrorCode.BAD_REQUEST, '"user" must be a non-empty string', env.msgId);
  if (rec.broadcast !== undefined && rec.broadcast !== true) return invalid(ErrorCode.BAD_REQUEST, '"broadcast" must be true when present', env.msgId);
  if (rec.delivery !== undefined && !DELIVERY_MODES.has(rec.delivery as DeliveryMode)) return invalid(ErrorCode.BAD_REQUEST, '"delivery" must be "at-most-once" or "at-least-once"', env.msgId);
  if (rec.filter !== undefined && (typeof rec.filter !== 'object' || rec.filter === null || Array.isArray(rec.filter))) return invalid(ErrorCode.INVALID_FILTER, '"filter" must be an object', env.msgId);
  const request: PublishRequest = {
    ...(rec.channel !== undefined ? { channel: rec.channel } : {}),
    ...(rec.user !== undefined ? { user: rec.user as string } : {}),
    ...(rec.broadcast === true ? { broadcast: true } : {}),
    ...(rec.filter !== undefined ? { filter: rec.filter as TagFilter } : {}),
    ...(rec.delivery !== undefined ? { delivery: rec.delivery as DeliveryMode } : {}),
    eventType: env.eventType,
    payload: env.payload,
    source: env.source,
    version: env.version,
    msgId: env.msgId,
  };
  return { ok: true, request };
}

/**
 * Was this channel message already accepted, by a node that crashed before acknowledging the entry?
 * Within `publish.idempotencyWindowMs` the engine's idempotency window answers that on any node (the
 * record is in the API's scope), but a redelivery can come later than that; a channel's history is
 * written in the same atomic step as the publish, so it is the record of truth for channel targets
 * within the history window. Other targets have no such record: there the window is all there is.
 */
async function inChannelHistory(node: Pick<IngestNode, 'historyConfig' | 'broker'>, channel: string, msgId: string): Promise<boolean> {
  const config = node.historyConfig(channel);
  if (config.size <= 0) return false;
  const res = await node.broker.history(channel, { limit: config.size, config });
  return res.entries.some((e) => e.envelope.msgId === msgId);
}

/**
 * Publishes one record. `redelivered` says the stream delivered the entry before (to this consumer
 * or another): channel history is then checked for the msgId first.
 */
export async function ingestRecord(node: IngestNode, text: string | undefined, redelivered: boolean): Promise<IngestOutcome> {
  const parsed = parseRecord(node, text);
  if (!parsed.ok) return { kind: 'invalid', code: parsed.code, reason: parsed.reason, ...(parsed.msgId !== undefined ? { msgId: parsed.msgId } : {}) };
  const req = parsed.request;
  const msgId = req.msgId!;
  try {
    if (redelivered && req.channel !== undefined && (await inChannelHistory(node, req.channel, msgId))) return { kind: 'duplicate', msgId };
    const res = await node.publish(req);
    return { kind: res.duplicate ? 'duplicate' : 'published', msgId };
  } catch (err) {
    if (err instanceof HeraldError && !err.temporary) return { kind: 'invalid', code: err.code, reason: err.message, msgId };
    return { kind: 'retry', error: err as Error, msgId };
  }
}

/** `herald_ingest_messages_total{source, stream, outcome}` on the node's registry (one per registry). */
const counters = new WeakMap<Registry, Counter<'source' | 'stream' | 'outcome'>>();

export function ingestCounter(registry: Registry): Counter<'source' | 'stream' | 'outcome'> {
  let c = counters.get(registry);
  if (!c) {
    c = new Counter({
      name: 'herald_ingest_messages_total',
      help: 'Stream entries handled by the ingestors, by outcome (published, duplicate, invalid, retry, dead_lettered)',
      labelNames: ['source', 'stream', 'outcome'],
      registers: [registry],
    });
    counters.set(registry, c);
  }
  return c;
}

/** Test seams. A throwing hook is treated like a crash at that point: the ingestor stops at once. */
export interface IngestHooks {
  /** Called after the node accepted the message and before the entry is acknowledged. */
  beforeAck?(msgId: string, entryId: string): void | Promise<void>;
}

/** Delay for the n-th consecutive temporary failure (ms): 100, 200, 400 … capped at 2 s. */
export function retryDelay(failures: number): number {
  return Math.min(2000, 100 * 2 ** Math.max(0, Math.min(failures - 1, 5)));
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
