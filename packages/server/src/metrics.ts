/** Prometheus metrics, one registry per node so several nodes can live in one test process. */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** prom-client default metrics whose cost grows with the number of sockets; not collected. */
const PER_HANDLE_METRICS = [
  'process_open_fds',
  'nodejs_active_handles',
  'nodejs_active_handles_total',
  'nodejs_active_resources',
  'nodejs_active_resources_total',
  'nodejs_active_requests',
  'nodejs_active_requests_total',
];

export class Metrics {
  readonly registry = new Registry();
  readonly publishes: Counter<'target'>;
  readonly deliveries: Counter;
  readonly deliveryLatency: Histogram;
  readonly slowConsumerCloses: Counter;
  readonly rejectedConnections: Counter<'reason'>;
  readonly invalidFrames: Counter<'code'>;
  readonly heartbeatTimeouts: Counter;
  readonly retriesExhausted: Counter;
  readonly inboxDropped: Counter;
  readonly publishFastPath: Counter;
  readonly rateLimited: Counter<'limit'>;
  readonly enginePublishFailures: Counter;
  readonly brokerGaps: Counter;
  readonly jwksFetches: Counter<'key_set' | 'result'>;
  readonly jwksKeys: Gauge<'key_set'>;
  readonly jwksLastSuccess: Gauge<'key_set'>;

  readonly proxyRequests: Counter<'hook' | 'outcome'>;
  readonly proxyDuration: Histogram<'hook'>;

  constructor(sources: { connections(): number; subscriptions(): number; queuedBytes(): number; proxyInFlight?(): number }) {
    const registers = [this.registry];
    // The event-loop delay sampler is a libuv timer: at prom-client's 10 ms it wakes an idle server
    // 100 times a second, which on a VM costs more CPU than the samples are worth. A block still
    // shows up at 50 ms, as a late sample.
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 50 });
    // These walk every handle or open file on each scrape: with many connections they were most
    // of a scrape's time, blocking deliveries that long (BENCHMARKS.md, "A /metrics scrape with
    // many connections"). herald_connections says the same.
    for (const name of PER_HANDLE_METRICS) this.registry.removeSingleMetric(name);
    new Gauge({ name: 'herald_connections', help: 'Open client connections', registers, collect() { this.set(sources.connections()); } });
    new Gauge({ name: 'herald_subscriptions', help: 'Channel subscriptions held', registers, collect() { this.set(sources.subscriptions()); } });
    new Gauge({ name: 'herald_queued_bytes', help: 'Bytes queued for clients, in Herald and in socket buffers', registers, collect() { this.set(sources.queuedBytes()); } });
    this.publishes = new Counter({ name: 'herald_publishes_total', help: 'Publications accepted, by target', labelNames: ['target'], registers });
    this.deliveries = new Counter({ name: 'herald_deliveries_total', help: 'Messages queued to connections', registers });
    this.deliveryLatency = new Histogram({
      name: 'herald_delivery_latency_seconds',
      help: 'From publish accepted to the last recipient\'s bytes written to its socket',
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.slowConsumerCloses = new Counter({ name: 'herald_slow_consumer_closes_total', help: 'Connections closed for a full outgoing queue', registers });
    this.rejectedConnections = new Counter({ name: 'herald_connections_rejected_total', help: 'Connections refused, by reason', labelNames: ['reason'], registers });
    this.invalidFrames = new Counter({ name: 'herald_invalid_frames_total', help: 'Client frames refused, by error code', labelNames: ['code'], registers });
    this.retriesExhausted = new Counter({ name: 'herald_retries_exhausted_total', help: 'At-least-once deliveries that used every attempt without an ACK (then kept in the inbox)', registers });
    this.inboxDropped = new Counter({ name: 'herald_inbox_dropped_total', help: 'Inbox messages dropped by size or age limits', registers });
    this.publishFastPath = new Counter({ name: 'herald_publish_fast_path_requests_total', help: 'POST /api/v1/publish requests answered without the fastify pipeline', registers });
    this.rateLimited = new Counter({ name: 'herald_rate_limited_total', help: 'Frames and requests refused with rate_limited, by limit (rateLimits.*)', labelNames: ['limit'], registers });
    this.heartbeatTimeouts = new Counter({ name: 'herald_heartbeat_timeouts_total', help: 'Connections closed for missed pongs', registers });
    this.enginePublishFailures = new Counter({ name: 'herald_engine_publish_failures_total', help: 'Publishes the engine could not take (answered 503 broker_unavailable)', registers });
    this.jwksFetches = new Counter({ name: 'herald_jwks_fetches_total', help: 'Fetches of a key set URL (auth.jwt.jwksUrl, auth.jwt.keySets[].jwksUrl), by key set and result (ok, error)', labelNames: ['key_set', 'result'], registers });
    this.jwksKeys = new Gauge({ name: 'herald_jwks_keys', help: 'Keys in the key set fetched from a URL and in use, by key set', labelNames: ['key_set'], registers });
    this.jwksLastSuccess = new Gauge({ name: 'herald_jwks_last_success_timestamp_seconds', help: 'When a key set URL last answered with a key set, by key set (unix time)', labelNames: ['key_set'], registers });

    this.proxyRequests = new Counter({ name: 'herald_proxy_requests_total', help: 'Proxy hook calls, by hook and outcome (result, refused, disconnect, unavailable, invalid, overflow)', labelNames: ['hook', 'outcome'], registers });
    this.proxyDuration = new Histogram({
      name: 'herald_proxy_request_seconds',
      help: 'Time from a proxy hook request to its answer (or its failure), by hook',
      labelNames: ['hook'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    new Gauge({ name: 'herald_proxy_in_flight', help: 'Proxy hook requests waiting on backends', registers, collect() { this.set(sources.proxyInFlight?.() ?? 0); } });
    this.brokerGaps = new Counter({ name: 'herald_broker_gaps_total', help: 'Times the broker reported dispatches may have been lost (subscribers were asked to reconnect and recover)', registers });
  }

  observeJwksFetch(keySet: string, ok: boolean, keys: number, nowMs = Date.now()): void {
    this.jwksFetches.inc({ key_set: keySet, result: ok ? 'ok' : 'error' });
    this.jwksKeys.set({ key_set: keySet }, keys);
    if (ok) this.jwksLastSuccess.set({ key_set: keySet }, Math.floor(nowMs / 1000));
  }
}
