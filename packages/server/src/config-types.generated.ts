/* Generated from api/config.schema.json by scripts/gen-config.mjs (npm run -w herald gen:config); do not edit. */

export type DeliveryMode = 'at-most-once' | 'at-least-once';

export interface HeraldConfig {
  /**
   * Where editors find this schema, e.g. "../api/config.schema.json" from a file in packages/server/configs; ignored by Herald.
   */
  $schema?: string;
  /**
   * A note for the reader of the file; ignored by Herald.
   */
  $comment?: string;
  server: {
    host: string;
    port: number;
    nodeName: string;
    demoPage: boolean;
    /**
     * Number of trusted proxy hops in front of Herald (0: ignore X-Forwarded-For). true means 1, false means 0.
     */
    trustProxy: number;
    workers: number;
    nativeSend: boolean;
    /**
     * Node HTTP server protection: request and header deadlines, and a cap on open TCP connections (0: derived from the limits).
     */
    http: {
      requestTimeoutMs: number;
      headersTimeoutMs: number;
      keepAliveTimeoutMs: number;
      maxConnections: number;
    };
  };
  auth: {
    anonymous: boolean;
    jwt: {
      hmacSecret: string;
      publicKeyFile: string;
      jwksFile: string;
      /**
       * HTTPS URL of a JWKS (plain http only to a loopback host).
       */
      jwksUrl: string;
      /**
       * Least time between two fetches of `jwksUrl`.
       */
      jwksCooldownMs: number;
      /**
       * Timeout of one fetch of `jwksUrl`.
       */
      jwksTimeoutMs: number;
      /**
       * @minItems 1
       */
      algorithms: ('HS256' | 'HS384' | 'HS512' | 'RS256' | 'RS384' | 'RS512' | 'PS256' | 'ES256' | 'ES384' | 'EdDSA')[];
      issuer: string;
      audience: string;
      /**
       * Refuse tokens without `exp`.
       */
      requireExp: boolean;
      /**
       * Allowed clock skew for `exp`, `nbf` and `iat`, in seconds.
       */
      clockToleranceSec: number;
    };
  };
  api: {
    /**
     * API keys for `/api/v1`. A string is an admin key (the whole API); an object limits its key to a scope: `publish` (POST /publish and /publish/batch, optionally only to the channels matching `channels`), `read` (the GET routes) or `admin`.
     */
    keys: (
      | string
      | {
          key: string;
          scope: 'publish' | 'read' | 'admin';
          /**
           * Only with scope `publish`: the channel patterns (`*` matches any run of characters) it may publish to; a user or broadcast publish is refused.
           *
           * @minItems 1
           */
          channels?: string[];
        }
    )[];
    publishFastPath: boolean;
  };
  origins: {
    allowed: string[];
  };
  limits: {
    maxConnections: number;
    maxConnectionsPerUser: number;
    maxConnectionsPerIp: number;
    /**
     * IPv6 clients are grouped by this prefix length for the per-IP limits.
     */
    ipv6PrefixLength: number;
    /**
     * Sockets upgraded but not yet authenticated (no `connected` yet); counted apart from `maxConnections`.
     */
    maxPendingConnections: number;
    maxSubscriptionsPerConnection: number;
    maxMessageBytes: number;
    /**
     * Deepest nesting of arrays and objects accepted in any JSON a client sends (frames, HTTP bodies).
     */
    maxJsonDepth: number;
    handshakeTimeoutMs: number;
    maxQueueBytes: number;
    maxInvalidFrames: number;
    overload: {
      mode: 'reject' | 'queue';
      queueTimeoutMs: number;
      maxQueued: number;
    };
  };
  heartbeat: {
    intervalMs: number;
    pongTimeoutMs: number;
    maxMissed: number;
  };
  channels: {
    public: string[];
    clientPublish: string[];
    history: {
      size: number;
      ttlMs: number;
    };
    maxRecover: number;
    /**
     * Per-namespace overrides, keyed by the part of the channel name before the first `:`.
     */
    namespaces: {
      [k: string]: {
        history?: History;
        delivery?: DeliveryMode;
        rateLimits?: {
          publish?: Bucket;
          subscribe?: Bucket;
        };
      };
    };
  };
  publish: {
    idempotencyWindowMs: number;
    defaultSource: string;
    defaultVersion: string;
    idempotencyMaxKeys: number;
  };
  rpc: {
    timeoutMs: number;
    maxPendingPerConnection: number;
    /**
     * Register the built-in `echo` method (demos, tests).
     */
    echo: boolean;
  };
  cluster: {
    /**
     * How long a cluster-wide admin answer waits for the other nodes before it answers with the nodes that replied and names the missing ones.
     */
    controlTimeoutMs: number;
    /**
     * How often each node announces itself (name, version, uptime, connections) on the control plane.
     */
    heartbeatIntervalMs: number;
    /**
     * A node with no heartbeat for this long is gone: no longer listed, no longer waited for.
     */
    nodeTtlMs: number;
  };
  engine: {
    type: 'memory' | 'sqlite' | 'redis' | 'nats';
    sqlite: {
      dataDir: string;
      synchronous: 'off' | 'normal' | 'full';
    };
    redis: {
      mode: 'standalone' | 'sentinel' | 'cluster';
      url: string;
      sentinel: {
        sentinels: string[];
        masterName: string;
        password: string;
        sentinelPassword: string;
        db: number;
      };
      cluster: {
        nodes: string[];
        password: string;
      };
      prefix: string;
      presenceTtlMs: number;
    };
    nats: {
      /**
       * @minItems 1
       */
      servers: string[];
      prefix: string;
      presenceTtlMs: number;
      replicas: number;
    };
  };
  log: {
    level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  };
  shutdown: {
    drainTimeoutMs: number;
  };
  delivery: {
    defaultMode: DeliveryMode;
    ackTimeoutMs: number;
    retry: {
      initialDelayMs: number;
      multiplier: number;
      maxDelayMs: number;
      jitter: number;
    };
    maxAttempts: number;
    maxInFlight: number;
    maxReceipts: number;
    receiptTtlMs: number;
    /**
     * Per-recipient records a detailed receipt keeps; beyond it only the counts grow.
     */
    maxRecipientsPerReceipt: number;
  };
  inbox: {
    maxMessages: number;
    maxAgeMs: number;
    deliverBatch: number;
  };
  /**
   * Streams Herald consumes messages from. Each entry is a publish request whose message is in the standard envelope; it is acknowledged to the stream only once accepted.
   */
  ingest: {
    redisStreams: {
      url?: string;
      stream: string;
      group?: string;
      consumer?: string;
      batch?: number;
      blockMs?: number;
      deadLetterStream?: string;
    }[];
    jetstream: {
      /**
       * @minItems 1
       */
      servers?: string[];
      stream: string;
      subject: string;
      durable?: string;
      batch?: number;
    }[];
  };
  /**
   * Token buckets; see docs/security.md.
   */
  rateLimits: {
    enabled: boolean;
    /**
     * Per connection. `frames` counts every frame but `ack`.
     */
    connection: {
      publish: Bucket;
      subscribe: Bucket;
      rpc: Bucket;
      frames: Bucket;
    };
    /**
     * Per user, across the user's connections on this node.
     */
    user: {
      publish: Bucket;
      subscribe: Bucket;
      rpc: Bucket;
    };
    /**
     * Per client IP (IPv6 grouped by `limits.ipv6PrefixLength`).
     */
    ip: {
      handshakes: Bucket;
    };
    /**
     * Per API key, for `/api/v1`.
     */
    apiKey: {
      requests: Bucket;
    };
    /**
     * Per user (per IP for anonymous clients), for `/poll/v1`.
     */
    poll: {
      requests: Bucket;
    };
    /**
     * A connection with more than `maxRejected` rate-limited frames within `windowMs` is closed with 4506.
     */
    abuse: {
      maxRejected: number;
      windowMs: number;
    };
  };
  /**
   * Operational endpoints: with `keys`, `/metrics` and `/docs` need one of them; `docs: false` removes `/docs`.
   */
  ops: {
    keys: string[];
    docs: boolean;
  };
  /**
   * The admin web UI at /admin: off by default; on, it needs a credential (a password hash, or an admin-scope key of api.keys with apiKeyLogin).
   */
  admin: {
    ui: {
      enabled: boolean;
      /**
       * From `herald admin hash-password`: scrypt$N$r$p$salt$hash
       */
      passwordHash: string;
      apiKeyLogin: boolean;
      sessionTtlMs: number;
      idleTimeoutMs: number;
      maxSessions: number;
      loginAttemptsPerMinute: number;
      secureCookie: 'auto' | 'always' | 'never';
      historySeconds: number;
    };
  };
}
export interface History {
  size?: number;
  ttlMs?: number;
}
/**
 * A token bucket: `perSecond` tokens are added each second up to `burst`; `perSecond: 0` turns the limit off.
 */
export interface Bucket {
  perSecond: number;
  burst: number;
}
