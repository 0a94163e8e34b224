/** IPC messages between the harness (parent) and its load-generator children. */
import type { AudienceSpec } from './audience.js';

/** Wire dialect a loadgen connection speaks: Herald's protocol v1, or Socket.IO 4 over raw WebSocket. */
export type Dialect = 'herald' | 'socketio';
export type ClientKind = 'raw' | 'native' | 'ws';

export type DeliveryMode = 'at-least-once' | 'at-most-once';

export interface WorkerConfig {
  /** WebSocket URL of the server under test. */
  url: string;
  /**
   * Several nodes of one cluster: connection `g` (global index) goes to
   * `urls[⌊g / channels.length⌋ mod n]` with `subscriptions.perConnection === 'one'` (so the
   * subscribers of one channel are spread over the nodes), else `urls[g mod n]`. Overrides `url`.
   */
  urls?: string[];
  dialect: Dialect;
  /** Connections this worker opens. */
  count: number;
  /** Global index of this worker's first connection (user ids are `user-<index>`). */
  firstIndex: number;
  /** Channel every connection subscribes to; '' subscribes to nothing. Ignored with `subscriptions`. */
  channel: string;
  /**
   * Several channels: each connection subscribes to all of them (`all`), or connection `g` to
   * `channels[g mod channels.length]` (`one`).
   */
  subscriptions?: { channels: string[]; perConnection: 'one' | 'all' } | undefined;
  /** HMAC secret the connection tokens are signed with. */
  secret: string;
  /** Local addresses the connections are spread over (round robin), e.g. 127.0.0.2… */
  sourceAddresses: string[];
  /** At most this many connections in their handshake at once. */
  concurrency: number;
  /** WebSocket client: the loadgen's own minimal one (raw-ws.ts), the same handing its socket to the native receive path after the handshake (native-recv.ts), or the `ws` library. */
  client: ClientKind;
  /** A connection that is not subscribed within this time counts as failed. */
  connectTimeoutMs: number;
  /** Who each connection is and which publishes it expects (audience.ts); default `user-<g>`, every publish. */
  audience?: AudienceSpec | undefined;
}

export type ToWorker =
  | { cmd: 'open'; config: WorkerConfig }
  /** Zero the delivery counters and the CPU baseline: the measured window starts now. */
  | { cmd: 'measure' }
  | { cmd: 'count' }
  /** Storm: drop every churning connection at once, then reconnect and resubscribe them. */
  | { cmd: 'churn' }
  | { cmd: 'report' }
  | { cmd: 'close' };

export interface OpenResult {
  connected: number;
  failed: number;
  /** From the first connection attempt to the last subscribed reply, ms (token signing excluded). */
  elapsedMs: number;
  errors: string[];
}

export interface WorkerReport {
  /** HDR histogram of publish-to-receive latency in µs, compressed base64. */
  histogram: string;
  /** `--client native`: publish-to-kernel-receive-timestamp latency in µs, same encoding; absent otherwise. */
  wireHistogram?: string | undefined;
  deliveries: number;
  /** Deliveries of a seq this connection had not seen before (in or out of order). */
  unique: number;
  duplicated: number;
  outOfOrder: number;
  /** Highest seq received by any connection. */
  maxSeq: number;
  /** Connections still open at report time. */
  open: number;
  /** Connections the server closed during the run, by close code. */
  closedByCode: Record<string, number>;
  pings: number;
  errorFrames: number;
  /** msgIds acknowledged (deliveries that carried `"ack":true`). */
  acks: number;
  /** Ack frames sent (the ACKs of one read share one frame). */
  ackFrames: number;
  /** Deliveries a connection was not meant to get (filter: its tags do not match). */
  unexpected: number;
  /** Storm: HDR histogram of reconnect handshakes (TCP connect → subscribed) in µs, compressed base64. */
  handshakeHistogram: string;
  /** Storm: reconnects that reached `subscribed`, and those that failed. */
  reconnects: number;
  reconnectsFailed: number;
  /** CPU the worker used since `measure` (process.cpuUsage), µs. */
  cpuMicros: number;
  wallMs: number;
}

export type FromWorker =
  | { ev: 'ready' }
  | { ev: 'opened'; result: OpenResult }
  /** Once a second; `epoch` counts the `measure`s seen, so a tick sent before the latest one is told apart. */
  | { ev: 'tick'; deliveries: number; open: number; epoch: number }
  | { ev: 'count'; deliveries: number }
  | { ev: 'churned'; result: OpenResult }
  | { ev: 'report'; report: WorkerReport }
  | { ev: 'closed' };

export interface PublisherConfig {
  /** Full URL of the HTTP publish endpoint. */
  url: string;
  apiKey: string;
  channel: string;
  /** Publishes per second (open loop). */
  rate: number;
  durationS: number;
  /** Keep-alive sockets to the server. */
  sockets: number;
  /** Past this many unanswered publishes the publisher waits (and falls behind its schedule). */
  maxInFlight: number;
  /** `"delivery"` in every publish body; absent leaves the server's default. */
  delivery?: DeliveryMode | undefined;
  /**
   * Several targets. `spread`: publish i (0-based) goes to `names[i mod n]` (a channel, or with
   * `field: 'user'` a user) with `seq = ⌊i / n⌋ + 1`, so each target sees seq 1, 2, 3…; `rate`
   * counts publishes. `batch` (channels): each tick POSTs one `…/publish/batch` (url + '/batch')
   * with one message per channel, message c of batch b (1-based) carrying
   * `seq = (b − 1)·n + c + 1`, so a connection subscribed to all of them sees 1, 2, 3…; `rate`
   * counts batches. Overrides `channel`.
   */
  targets?: { names: string[]; mode: 'spread' | 'batch'; field: 'channel' | 'user' } | undefined;
  /** Filtered broadcasts: publish i (1-based, seq i) is `{broadcast: true, filter: filters[(i − 1) mod n]}`. Overrides `channel`. */
  filters?: Array<Record<string, unknown>> | undefined;
  /** Seqs start at seqOffset + 1 (a later step on the same connections continues their runs). */
  seqOffset?: number | undefined;
}

export type ToPublisher = { cmd: 'publish'; config: PublisherConfig };

export interface PublishReport {
  /** Publishes sent, seq 1…sent. */
  sent: number;
  /** Publishes answered 2xx (batch: batches whose every message was accepted). */
  ok: number;
  /** With `targets` or `filters`: messages accepted per target (channel, user) or per filter. */
  okByTarget?: number[];
  errors: number;
  firstError?: string;
  /** HTTP round trip of each publish, HDR histogram in µs, compressed base64. */
  histogram: string;
  /** Wall time from the first send to the last answer, ms. */
  elapsedMs: number;
  /** Publishes that went out later than their slot by more than 10 ms (the publisher fell behind). */
  late: number;
}

export type FromPublisher = { ev: 'ready' } | { ev: 'published'; report: PublishReport };
