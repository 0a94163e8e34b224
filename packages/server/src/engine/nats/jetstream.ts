/**
 * JetStream plumbing shared by the NATS presence and inbox stores: opening a connection that fails
 * start-up naming `engine.nats.servers`, turning names into subject tokens, adopting a stream, and
 * reading every message under a subject filter through a short-lived consumer.
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

export const WRONG_LAST_SEQUENCE = 10071;
const STREAM_NOT_FOUND = 10059;

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

/**
 * Connects and checks that JetStream answers. Either failure names engine.nats.servers, so a
 * wrong address stops start-up with the key to fix.
 */
export async function openJetStream(opts: NatsEngineOptions, role: string): Promise<JetStreamLink> {
  const where = `engine.nats.servers=${opts.servers.join(',')}`;
  const timeoutMs = opts.requestTimeoutMs ?? 3000;
  let nc: NatsConnection;
  try {
    nc = await connect({ servers: opts.servers, name: `herald:${opts.prefix}:${role}`, maxReconnectAttempts: -1, reconnectTimeWait: 500, timeout: 5000 });
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
    if (apiErrorCode(err) !== STREAM_NOT_FOUND) throw err;
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

export function apiErrorCode(err: unknown): number | undefined {
  return (err as { api_error?: { err_code?: number } } | undefined)?.api_error?.err_code;
}

/** "No message" from a stream get, a direct get or a delete. */
export function isNotFound(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown; api_error?: { code?: number; err_code?: number } } | undefined;
  return e?.api_error?.err_code === 10037 || e?.api_error?.code === 404 || String(e?.code) === '404' || /no message found|message not found/i.test(String(e?.message ?? ''));
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
