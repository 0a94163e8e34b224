/**
 * The one module of NATS plumbing, shared by the NATS broker, inbox, presence and idempotency bucket
 * and by the JetStream ingestor: checking the prefix, opening a connection that fails start-up
 * naming the configuration key that points at it, watching its status, turning names into subject
 * tokens, adopting a stream, reading a subject's messages, and telling JetStream's API errors apart.
 */
import {
  AckPolicy,
  connect,
  DeliverPolicy,
  nanos,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  type NatsConnection,
  type StoredMsg,
  type StreamConfig,
  type StreamInfo,
} from 'nats';

export interface NatsEngineOptions {
  /** engine.nats.servers */
  servers: string[];
  /** engine.nats.prefix: first token of every subject, and the start of every stream name. */
  prefix: string;
  /** engine.nats.replicas: replicas of the streams Herald creates (1 on a single server). */
  replicas?: number;
  /** JetStream requests fail after this long (ms). Default 3000. */
  requestTimeoutMs?: number;
  onError?: (err: Error, where: string) => void;
}

export interface JetStreamLink {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  timeoutMs: number;
}

/** JetStream API error codes (`api_error.err_code`) Herald acts on. */
export const JsErr = {
  CONSUMER_NOT_FOUND: 10014,
  /** A stream get (by sequence or last by subject) found nothing. */
  NO_MESSAGE_FOUND: 10037,
  /** A delete of a sequence inside the stream's range that is already gone. */
  SEQUENCE_NOT_FOUND: 10043,
  /** A delete of a sequence at or past the stream's ends. */
  STORE_EOF: 10057,
  STREAM_NOT_FOUND: 10059,
  /** An expected-last-sequence check (a CAS, or a KV create of a taken key) failed. */
  WRONG_LAST_SEQUENCE: 10071,
} as const;

export const WRONG_LAST_SEQUENCE = JsErr.WRONG_LAST_SEQUENCE;

/** engine.nats.prefix, checked where each part of the engine is constructed. */
export function checkNatsPrefix(prefix: string): void {
  // The prefix is a subject token and part of stream and bucket names, which allow no `.`, `*`, `>` or spaces.
  if (!/^[A-Za-z0-9_-]+$/.test(prefix)) throw new Error(`engine.nats.prefix must match [A-Za-z0-9_-]+, got ${JSON.stringify(prefix)}`);
}

export function checkNatsReplicas(replicas: number | undefined): number {
  const r = replicas ?? 1;
  if (!Number.isInteger(r) || r < 1 || r > 5) throw new Error(`engine.nats.replicas must be an integer from 1 to 5, got ${JSON.stringify(replicas)}`);
  return r;
}

/** A name as one subject token: base64url (no `.`, `*`, `>`), and `_` for the empty name (never a base64url output). */
export function subjectToken(name: string): string {
  return name === '' ? '_' : Buffer.from(name, 'utf8').toString('base64url');
}

/** Where to connect, and the configuration key that names it (for start-up errors). */
export interface JetStreamTarget {
  servers: string[];
  /** JetStream requests fail after this long (ms). Default 3000. */
  requestTimeoutMs?: number;
  /** Default `engine.nats.servers`; an ingestor names its own entry. */
  configKey?: string;
}

/**
 * Connects and checks that JetStream answers. Either failure names the configuration key, so a
 * wrong address stops start-up with the key to fix. `name` is the connection's name on the server.
 */
export async function openJetStream(target: JetStreamTarget, name: string): Promise<JetStreamLink> {
  const where = `${target.configKey ?? 'engine.nats.servers'}=${target.servers.join(',')}`;
  const timeoutMs = target.requestTimeoutMs ?? 3000;
  let nc: NatsConnection;
  try {
    nc = await connect({ servers: target.servers, name, maxReconnectAttempts: -1, reconnectTimeWait: 500, timeout: 5000 });
  } catch (err) {
    throw new Error(`cannot connect to NATS at ${where}: ${(err as Error).message}`, { cause: err });
  }
  try {
    const jsm = await nc.jetstreamManager({ timeout: timeoutMs });
    return { nc, jsm, js: nc.jetstream({ timeout: timeoutMs }), timeoutMs };
  } catch (err) {
    await nc.close().catch(() => undefined);
    throw new Error(`NATS at ${where} has no usable JetStream (start nats-server with -js): ${(err as Error).message}`, { cause: err });
  }
}

/** Closes after delivering what is in flight; a connection that cannot drain is closed. */
export async function closeLink(nc: NatsConnection | undefined): Promise<void> {
  if (nc && !nc.isClosed()) await nc.drain().catch(() => nc.close());
}

/** Reports the connection's ups and downs until it closes. */
export function watchConnection(nc: NatsConnection, on: { reconnect: () => void; disconnect?: () => void; error?: (err: Error, where: string) => void }): void {
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'reconnect') on.reconnect();
      else if (s.type === 'disconnect') on.disconnect?.();
      else if (s.type === 'error') on.error?.(new Error(String(s.data)), 'nats');
    }
  })();
}

/**
 * Creates the stream, or adopts an existing one as it is, except that `raise` may change settings
 * Herald depends on (e.g. a longer max_age). Another node creating it at the same moment is fine.
 */
export async function ensureStream(
  jsm: JetStreamManager,
  config: Partial<StreamConfig> & { name: string },
  raise: (existing: StreamConfig) => Partial<StreamConfig> | undefined,
): Promise<StreamInfo> {
  try {
    const info = await jsm.streams.info(config.name);
    const change = raise(info.config);
    return change ? await jsm.streams.update(config.name, change) : info;
  } catch (err) {
    if (apiErrorCode(err) !== JsErr.STREAM_NOT_FOUND) throw err;
  }
  try {
    return await jsm.streams.add(config);
  } catch (err) {
    return jsm.streams.info(config.name).catch(() => {
      throw err;
    });
  }
}

/**
 * Every message of `stream` matching `filter` from `startSeq` on, oldest first, through an
 * ephemeral consumer. `pending` (the count when the consumer was made) is handed to `use` first,
 * so a caller that only needs the count or decides it needs nothing more fetches nothing.
 */
export async function readFiltered<T>(
  link: JetStreamLink,
  stream: string,
  spec: { filter: string; startSeq?: number; headersOnly?: boolean },
  use: (pending: number, fetch: (max: number) => Promise<JsMsg[]>) => Promise<T>,
): Promise<T> {
  const info = await link.jsm.consumers.add(stream, {
    filter_subject: spec.filter,
    ...(spec.startSeq && spec.startSeq > 1 ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: spec.startSeq } : { deliver_policy: DeliverPolicy.All }),
    ack_policy: AckPolicy.None,
    mem_storage: true,
    headers_only: spec.headersOnly ?? false,
    // Removed below; the threshold only matters when this process dies in between.
    inactive_threshold: nanos(30_000),
  });
  const fetch = async (max: number): Promise<JsMsg[]> => {
    const out: JsMsg[] = [];
    if (max <= 0 || info.num_pending === 0) return out;
    const consumer = await link.js.consumers.get(stream, info.name);
    const iter = await consumer.fetch({ max_messages: max, expires: Math.max(1000, link.timeoutMs) });
    for await (const m of iter) {
      out.push(m);
      // `pending` 0: nothing else matches now (messages removed since creation are not waited for).
      if (out.length >= max || m.info.pending === 0) break;
    }
    return out;
  };
  try {
    return await use(info.num_pending, fetch);
  } finally {
    link.jsm.consumers.delete(stream, info.name).catch(() => undefined);
  }
}

/** The first message at or after `seq` matching `filter` (wildcards allowed), or undefined. Needs allow_direct. */
export async function nextMessage(link: JetStreamLink, stream: string, filter: string, seq = 0): Promise<StoredMsg | undefined> {
  // nats.js 2 implements direct get on the manager but leaves it out of the JetStreamManager type.
  const direct = (link.jsm as JetStreamManager & DirectGet).direct;
  if (!direct) throw new Error('this nats client has no JetStream direct get (nats.js 2.29 expected)');
  try {
    return await direct.getMessage(stream, { next_by_subj: filter, seq });
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

interface DirectGet {
  direct?: { getMessage(stream: string, query: { next_by_subj: string; seq: number }): Promise<StoredMsg> };
}

/** The last message stored on exactly `subject`, or undefined. */
export async function lastMessage(link: JetStreamLink, stream: string, subject: string): Promise<StoredMsg | undefined> {
  try {
    return await link.jsm.streams.getMessage(stream, { last_by_subj: subject });
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/** Deletes the message at `seq` (without overwriting it); false when it was already gone. */
export async function deleteMessage(link: JetStreamLink, stream: string, seq: number): Promise<boolean> {
  try {
    return await link.jsm.streams.deleteMessage(stream, seq, false);
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

export function apiErrorCode(err: unknown): number | undefined {
  return (err as { api_error?: { err_code?: number } } | undefined)?.api_error?.err_code;
}

/**
 * "That message is not there" from a stream get, a direct get or a delete — and nothing else: a
 * missing stream (`api_error.code` 404 too, err_code 10059) or a timeout is an error to report, not
 * an empty subject. A stream get says 10037; a delete says 10043 inside the stream's range and
 * 10057 at or past its ends; a direct get answers with a bare 404 status and no API error body.
 */
export function isNotFound(err: unknown): boolean {
  const code = apiErrorCode(err);
  if (code !== undefined) return code === JsErr.NO_MESSAGE_FOUND || code === JsErr.SEQUENCE_NOT_FOUND || code === JsErr.STORE_EOF;
  return String((err as { code?: unknown } | undefined)?.code) === '404';
}

/** Runs `fn` over `items` with at most `width` calls in flight. */
export async function inParallel<T, R>(items: readonly T[], width: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
  return out;
}
