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
      /**
       * Largest `info` claim a token may carry (its JSON, in bytes); it is shown to a channel's members through presence. A bigger one refuses the token (`unauthorized`).
       */
      maxInfoBytes: number;
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
       * More key sets, each with its own keys, issuer, audience and algorithms (e.g. an identity provider's JWKS URL beside the backend's HMAC secret). A token is verified by the sets whose issuer it names, then by those without an issuer.
       *
       * @maxItems 8
       */
      keySets: {
        /**
         * Names the set in messages and metrics (`key_set` label).
         */
        name: string;
        hmacSecret?: string;
        publicKeyFile?: string;
        jwksFile?: string;
        jwksUrl?: string;
        issuer?: string;
        audience?: string;
        /**
         * @minItems 1
         */
        algorithms?: ('HS256' | 'HS384' | 'HS512' | 'RS256' | 'RS384' | 'RS512' | 'PS256' | 'ES256' | 'ES384' | 'EdDSA')[];
      }[];
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
     * Deepest nesting of arrays and objects accepted in any JSON a client sends (frames, HTTP bodies) or a proxy hook answers.
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
        /**
         * Keep this namespace's channel members (cluster-wide) for the presence API and frames, and their join/leave events.
         */
        presence?: boolean;
        /**
         * With presence on: send join/leave frames to every subscriber that does not decline them (`subscribe` with `presence: false`), rather than only to those that ask (`presence: true`).
         */
        joinLeave?: boolean;
        delivery?: DeliveryMode;
        rateLimits?: {
          publish?: Bucket;
          subscribe?: Bucket;
        };
        /**
         * This namespace's own subscribe and publish hooks, replacing `proxy.subscribe` / `proxy.publish` for its channels (`timeoutMs` defaults to the global hook's).
         */
        proxy?: {
          subscribe?: ProxyHook;
          publish?: ProxyHook;
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
  /**
   * Proxy hooks: Herald asks the application's backend over HTTP (docs/integration.md). Each hook is off while its `url` is empty.
   */
  proxy: {
    /**
     * Asked when a client connects without a token (or always, with `always`): the backend names the user and its rights, or refuses.
     */
    connect: {
      /**
       * The backend URL Herald POSTs this hook's JSON to (http or https); empty turns the hook off.
       */
      url: string;
      /**
       * How long Herald waits for the backend's whole answer before the client gets `backend_unavailable` (temporary).
       */
      timeoutMs: number;
      /**
       * Ask the backend on every connect, with the verified token's claims when there is one; otherwise only connections without a token are asked.
       */
      always: boolean;
    };
    /**
     * Asked for a subscription that neither the token, a subscription token nor `channels.public` grants.
     */
    subscribe: {
      /**
       * The backend URL Herald POSTs this hook's JSON to (http or https); empty turns the hook off.
       */
      url: string;
      /**
       * How long Herald waits for the backend's whole answer before the client gets `backend_unavailable` (temporary).
       */
      timeoutMs: number;
    };
    /**
     * Every client publish to a channel goes through the backend, which may refuse it or rewrite its payload (the token's publish rights are then not consulted).
     */
    publish: {
      /**
       * The backend URL Herald POSTs this hook's JSON to (http or https); empty turns the hook off.
       */
      url: string;
      /**
       * How long Herald waits for the backend's whole answer before the client gets `backend_unavailable` (temporary).
       */
      timeoutMs: number;
    };
    /**
     * A client `request` whose method the server does not handle goes to the backend; its answer is the response.
     */
    rpc: {
      /**
       * The backend URL Herald POSTs this hook's JSON to (http or https); empty turns the hook off.
       */
      url: string;
      /**
       * How long Herald waits for the backend's whole answer before the client gets `backend_unavailable` (temporary).
       */
      timeoutMs: number;
    };
    /**
     * Asked for fresh credentials when a connection's token nears its expiry; without it the client is expected to send a `refresh` frame.
     */
    refresh: {
      /**
       * The backend URL Herald POSTs this hook's JSON to (http or https); empty turns the hook off.
       */
      url: string;
      /**
       * How long Herald waits for the backend's whole answer before the client gets `backend_unavailable` (temporary).
       */
      timeoutMs: number;
      /**
       * How long before the token's expiry the backend is asked (or the connection becomes due for an in-band refresh).
       */
      aheadMs: number;
    };
    /**
     * Request headers of the WebSocket upgrade forwarded to the connect hook (and, from the connection, to every hook), by name. Nothing is forwarded unless listed.
     */
    headers: string[];
    /**
     * Cookies of the WebSocket upgrade forwarded to the hooks, by name.
     */
    cookies: string[];
    /**
     * Hook requests this node may have waiting on backends at once; past it a hook fails at once with `backend_unavailable` (temporary) instead of queueing.
     */
    maxInFlight: number;
    /**
     * Hook requests one connection may have waiting at once (rpc and publish floods); past it, `backend_unavailable` (temporary).
     */
    maxInFlightPerConnection: number;
    /**
     * Largest backend answer read; a longer one is refused as `backend_error`.
     */
    maxResponseBytes: number;
    /**
     * Signing of hook requests, so a backend can tell Herald from anyone else who reaches its hook URLs (docs/integration.md#signed-hook-requests).
     */
    signing: {
      /**
       * HMAC-SHA256 keys every hook request is signed with, in a `Herald-Signature: t=<unix s>,kid=<kid>,v1=<hex>[,kid=…,v1=…]` header over `<t>.proxy.<body>`; several while a key is rotated, each kid different. Empty: requests are not signed. Keep them apart from the webhook secrets.
       *
       * @minItems 0
       * @maxItems 4
       */
      secrets: {
        kid: string;
        secret: string;
      }[];
    };
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
   * Signed webhooks to the application, delivered at least once from a durable outbox in the engine (sqlite, redis or nats; refused on memory). docs/integration.md#webhooks.
   */
  webhooks: {
    /**
     * @maxItems 32
     */
    endpoints: {
      id: string;
      url: string;
      /**
       * @minItems 1
       */
      events: (
        | 'connection.opened'
        | 'connection.closed'
        | 'subscription.added'
        | 'subscription.removed'
        | 'message.acknowledged'
        | 'message.retries_exhausted'
        | 'inbox.expired'
        | 'presence.join'
        | 'presence.leave'
        | '*'
      )[];
      /**
       * @minItems 1
       * @maxItems 4
       */
      secrets: {
        kid: string;
        secret: string;
      }[];
      timeoutMs?: number;
    }[];
    timeoutMs: number;
    concurrency: number;
    endpointConcurrency: number;
    leaseMs: number;
    pollIntervalMs: number;
    maxOutbox: number;
    maxDeadLetters: number;
    retry: {
      initialMs: number;
      maxMs: number;
      maxAttempts: number;
    };
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
export interface ProxyHook {
  url: string;
  timeoutMs?: number;
}
