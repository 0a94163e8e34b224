import { randomUUID } from 'node:crypto';
import type { ErrorBody } from '@herald/protocol';
import { HeraldError, isErrorBody, ServerSdkErrorCode } from './errors.js';
import { HttpCaller } from './http.js';
import { resolveOptions } from './options.js';
import type { HeraldServerClientOptions, ResolvedOptions } from './options.js';
import type { BatchItemResult, ChannelInfo, ChannelPresencePage, ChannelPresenceStats, ConnectionInfo, DisconnectOptions, ClusterStats, NodeInfo, PublishMessage, PublishOptions, PublishResult, Receipt } from './types.js';

/** The server's default `rpc.timeoutMs`; the SDK sends it explicitly so it knows how long to wait. */
export const DEFAULT_CLIENT_REQUEST_TIMEOUT_MS = 10_000;
const MAX_CLIENT_REQUEST_TIMEOUT_MS = 120_000;

interface WirePublishResult {
  msgId: string;
  timestamp: number;
  position?: { offset: number; epoch: string };
  duplicate?: boolean;
}

function invalid(name: string, rule: string): HeraldError {
  return new HeraldError(ServerSdkErrorCode.INVALID_ARGUMENT, `argument "${name}" ${rule}`);
}

function nonEmpty(value: unknown, name: string): string {
  if (typeof value !== 'string' || value === '') throw invalid(name, 'must be a non-empty string');
  return value;
}

/**
 * A typed client of one Herald node's HTTP API, for Node backends. Every publish carries a msgId
 * (yours or a generated UUID) fixed before the first try, so retrying it can never deliver twice:
 * the server answers a repeat with `duplicate: true`. Retry rules: see http.ts and docs/server-sdk.md.
 */
export class HeraldServerClient {
  private readonly options: ResolvedOptions;
  private readonly http: HttpCaller;

  constructor(options: HeraldServerClientOptions) {
    this.options = resolveOptions(options);
    this.http = new HttpCaller(this.options);
  }

  /** The node's base URL, without a trailing slash. */
  get url(): string {
    return this.options.baseUrl;
  }

  /** Publishes one message to a channel, a user or everyone (exactly one of `channel`, `user`, `broadcast`). */
  async publish<P>(message: PublishMessage<P>): Promise<PublishResult> {
    const body = withMsgId(message, 'message');
    const { body: answer, attempts } = await this.http.call<WirePublishResult>({ method: 'POST', path: '/api/v1/publish', body, retry: 'idempotent' });
    return toResult(answer, attempts);
  }

  /** Publishes to a channel's subscribers; the message is kept in the channel's history. */
  publishToChannel<P>(channel: string, eventType: string, payload: P, options: PublishOptions = {}): Promise<PublishResult> {
    return this.publish({ ...options, channel: nonEmpty(channel, 'channel'), eventType, payload });
  }

  /** Publishes to every connection of a user (the token's `sub`), whatever they subscribed to. */
  publishToUser<P>(user: string, eventType: string, payload: P, options: PublishOptions = {}): Promise<PublishResult> {
    return this.publish({ ...options, user: nonEmpty(user, 'user'), eventType, payload });
  }

  /** Publishes to every connection (narrow it with `options.filter`). */
  broadcast<P>(eventType: string, payload: P, options: PublishOptions = {}): Promise<PublishResult> {
    return this.publish({ ...options, broadcast: true, eventType, payload });
  }

  /**
   * Publishes 1–1000 messages in order. Each item gets its msgId before the first try, so the
   * whole batch is safe to repeat: items already accepted come back `duplicate` and are not
   * delivered twice. Items refused on their own are `{ok: false, msgId, error}`; a batch the
   * server refuses as a whole (a schema error) rejects.
   */
  async publishBatch(messages: PublishMessage[]): Promise<BatchItemResult[]> {
    if (!Array.isArray(messages) || messages.length === 0) throw invalid('messages', 'must be a non-empty array');
    const items = messages.map((m, i) => withMsgId(m, `messages[${i}]`));
    const { body, attempts } = await this.http.call<{ results: Array<WirePublishResult | { error: ErrorBody }> }>({ method: 'POST', path: '/api/v1/publish/batch', body: { messages: items }, retry: 'idempotent' });
    const results = body?.results;
    if (!Array.isArray(results) || results.length !== items.length) {
      throw new HeraldError(ServerSdkErrorCode.UNEXPECTED_RESPONSE, `batch answer has ${Array.isArray(results) ? results.length : 'no'} results for ${items.length} messages`, { details: { body } });
    }
    return results.map((r, i): BatchItemResult => {
      const msgId = items[i]!.msgId;
      if ('error' in r) {
        const error = isErrorBody(r.error) ? HeraldError.fromBody(r.error, 'server', 200) : new HeraldError(ServerSdkErrorCode.UNEXPECTED_RESPONSE, 'batch item error without an error body', { details: r });
        error.attempts = attempts;
        return { ok: false, msgId, error, attempts };
      }
      return { ok: true, ...toResult(r, attempts) };
    });
  }

  /** Closes every connection of a user on every node; resolves the number closed (0 is not an error). */
  async disconnectUser(user: string, options: DisconnectOptions = {}): Promise<number> {
    const path = `/api/v1/users/${encodeURIComponent(nonEmpty(user, 'user'))}/disconnect`;
    const { body } = await this.http.call<{ disconnected: number }>({ method: 'POST', path, body: disconnectBody(options), retry: 'idempotent' });
    return body.disconnected;
  }

  /**
   * Closes one connection wherever it is; rejects `connection_not_found` when no node holds it. Not
   * repeated after a timeout or a cut connection: a repeat would report `connection_not_found`
   * for a connection the first try closed.
   */
  async disconnectConnection(connectionId: string, options: DisconnectOptions = {}): Promise<void> {
    const path = `/api/v1/connections/${encodeURIComponent(nonEmpty(connectionId, 'connectionId'))}/disconnect`;
    await this.http.call({ method: 'POST', path, body: disconnectBody(options), retry: 'once' });
  }

  /**
   * Calls `method` on one connected client and resolves the `data` it answered. Rejects with the
   * client's own error (`origin: 'client'`) when it answered with one, `request_timeout` (504)
   * when it did not answer within `timeoutMs`, `connection_not_found` (404) when the connection is
   * not on this node or closed first. Never repeated unless the server says it did not send it
   * (429, 503): the client's method may not be idempotent.
   */
  async requestClient<T = unknown>(connectionId: string, method: string, data?: unknown, timeoutMs: number = DEFAULT_CLIENT_REQUEST_TIMEOUT_MS): Promise<T> {
    const path = `/api/v1/connections/${encodeURIComponent(nonEmpty(connectionId, 'connectionId'))}/request`;
    nonEmpty(method, 'method');
    if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > MAX_CLIENT_REQUEST_TIMEOUT_MS) throw invalid('timeoutMs', `must be an integer from 1 to ${MAX_CLIENT_REQUEST_TIMEOUT_MS}`);
    const { body } = await this.http.call<{ data?: unknown; error?: unknown }>({
      method: 'POST',
      path,
      body: { method, timeoutMs, ...(data !== undefined ? { data } : {}) },
      retry: 'once',
      // The server answers 504 after `timeoutMs`; the SDK's own deadline adds the usual allowance.
      timeoutMs: timeoutMs + this.options.timeoutMs,
    });
    if (body !== null && typeof body === 'object' && 'error' in body && body.error !== undefined) {
      if (isErrorBody(body.error)) throw HeraldError.fromBody(body.error, 'client', 200);
      throw new HeraldError(ServerSdkErrorCode.UNEXPECTED_RESPONSE, 'the client answered with an error that has no code', { origin: 'client', status: 200, details: body.error });
    }
    return (body?.data ?? null) as T;
  }

  /** The delivery receipt of an at-least-once message published through the API, or `null` when the node has none. */
  async getReceipt(msgId: string): Promise<Receipt | null> {
    const path = `/api/v1/messages/${encodeURIComponent(nonEmpty(msgId, 'msgId'))}`;
    try {
      const { body } = await this.http.call<Receipt>({ method: 'GET', path, retry: 'idempotent' });
      return body;
    } catch (err) {
      if (err instanceof HeraldError && err.origin === 'server' && err.code === 'not_found') return null;
      throw err;
    }
  }

  /** Channels with at least one subscriber on any node, sorted by name, counts summed; `prefix` keeps those starting with it. */
  async channels(prefix?: string): Promise<ChannelInfo[]> {
    const query = prefix === undefined ? '' : `?prefix=${encodeURIComponent(nonEmpty(prefix, 'prefix'))}`;
    const { body } = await this.http.call<{ channels: ChannelInfo[] }>({ method: 'GET', path: `/api/v1/channels${query}`, retry: 'idempotent' });
    return body.channels;
  }

  /** The live connections of a user on this node (empty for an unknown user). */
  async userConnections(user: string): Promise<ConnectionInfo[]> {
    const path = `/api/v1/users/${encodeURIComponent(nonEmpty(user, 'user'))}/connections`;
    const { body } = await this.http.call<{ connections: ConnectionInfo[] }>({ method: 'GET', path, retry: 'idempotent' });
    return body.connections;
  }

  /** Counters of the node that answered, of every node (`byNode`), their sums (`totals`), and which nodes answered. */
  async stats(): Promise<ClusterStats> {
    const { body } = await this.http.call<ClusterStats>({ method: 'GET', path: '/api/v1/stats', retry: 'idempotent' });
    return body;
  }

  /**
   * A page of a channel's members on every node (its namespace must have presence on), ordered by
   * connection id; pass the answer's `next` as `cursor` for the following page.
   */
  async presence(channel: string, options: { cursor?: string; limit?: number } = {}): Promise<ChannelPresencePage> {
    const query = new URLSearchParams();
    if (options.cursor !== undefined) query.set('cursor', nonEmpty(options.cursor, 'cursor'));
    if (options.limit !== undefined) {
      if (!Number.isInteger(options.limit) || options.limit < 1 || options.limit > 1000) throw invalid('limit', 'must be an integer from 1 to 1000');
      query.set('limit', String(options.limit));
    }
    const qs = query.size > 0 ? `?${query.toString()}` : '';
    const path = `/api/v1/channels/${encodeURIComponent(nonEmpty(channel, 'channel'))}/presence${qs}`;
    const { body } = await this.http.call<ChannelPresencePage>({ method: 'GET', path, retry: 'idempotent' });
    return body;
  }

  /** A channel's member counts on every node: connections and distinct users. */
  async presenceStats(channel: string): Promise<ChannelPresenceStats> {
    const path = `/api/v1/channels/${encodeURIComponent(nonEmpty(channel, 'channel'))}/presence-stats`;
    const { body } = await this.http.call<ChannelPresenceStats>({ method: 'GET', path, retry: 'idempotent' });
    return body;
  }

  /** The live nodes of the cluster, sorted by name. */
  async nodes(): Promise<NodeInfo[]> {
    const { body } = await this.http.call<{ nodes: NodeInfo[] }>({ method: 'GET', path: '/api/v1/nodes', retry: 'idempotent' });
    return body.nodes;
  }
}

function withMsgId<M extends PublishMessage>(message: M, name: string): M & { msgId: string } {
  if (typeof message !== 'object' || message === null || Array.isArray(message)) throw invalid(name, 'must be an object');
  if (message.msgId !== undefined && (typeof message.msgId !== 'string' || message.msgId === '')) throw invalid(`${name}.msgId`, 'must be a non-empty string');
  return { ...message, msgId: message.msgId ?? randomUUID() };
}

function toResult(answer: WirePublishResult, attempts: number): PublishResult {
  return {
    msgId: answer.msgId,
    timestamp: answer.timestamp,
    ...(answer.position ? { position: answer.position } : {}),
    duplicate: answer.duplicate === true,
    attempts,
  };
}

function disconnectBody(options: DisconnectOptions): DisconnectOptions {
  if (typeof options !== 'object' || options === null) throw invalid('options', 'must be an object');
  return { ...(options.reconnect !== undefined ? { reconnect: options.reconnect } : {}), ...(options.reason !== undefined ? { reason: options.reason } : {}) };
}
