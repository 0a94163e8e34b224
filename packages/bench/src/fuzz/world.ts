/**
 * The fixed cast of a fuzz run: the server configuration the fuzzer starts Herald with, the
 * secret and API key it mints credentials from, the channels and users its inputs name, and the
 * bystander's channel (which no attacker input ever publishes to).
 */
import { SignJWT } from 'jose';

export const FUZZ_SECRET = 'fuzz-secret-0123456789abcdef-0123456789';
export const FUZZ_API_KEY = 'fuzz-api-key-0123456789';
export const BYSTANDER_USER = 'fuzz-bystander';
export const BYSTANDER_CHANNEL = 'bystander:stream';

/** Stands for "this channel's current epoch" in generated recover requests; the attacker substitutes the real one. */
export const RECOVER_EPOCH = '{epoch}';

/** Channels attackers may subscribe to anonymously (`channels.public`); `fuzz:*` is also publishable anonymously. */
export const PUBLIC_PATTERNS = ['fuzz:*', 'bystander:*'];
export const CLIENT_PUBLISH_PATTERNS = ['fuzz:*'];

/** Channel names inputs use: allowed, allowed only with a token, and never allowed. */
export const CHANNELS = ['fuzz:a', 'fuzz:b', 'fuzz:c', 'fuzz:room-1', 'tok:x', 'tok:y', 'tok:deep:1', 'private:z', BYSTANDER_CHANNEL] as const;
/** Channels an attacker may publish to (never the bystander's). */
export const PUBLISH_CHANNELS = ['fuzz:a', 'fuzz:b', 'fuzz:c', 'fuzz:room-1', 'tok:x', 'tok:y', 'tok:deep:1', 'private:z'] as const;

/** What a token-authenticated attacker may do: its own user, a few patterns (two with several wildcards) and tags for filters. */
export function attackerClaims(index: number): TokenSpec {
  return {
    sub: `fuzz-u${index % 16}`,
    channels: ['fuzz:*', 'tok:*', 'tok:*:*', BYSTANDER_CHANNEL],
    publish: ['fuzz:*', 'tok:*'],
    tags: { plan: index % 2 === 0 ? 'pro' : 'free', app: `2.${index % 12}.0`, n: index % 5 },
  };
}

export interface TokenSpec {
  sub: string;
  channels: string[];
  publish: string[];
  tags?: Record<string, string | number | boolean>;
}

export async function mintToken(spec: TokenSpec, secret = FUZZ_SECRET): Promise<string> {
  return new SignJWT({ channels: spec.channels, publish: spec.publish, ...(spec.tags ? { tags: spec.tags } : {}) })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(spec.sub)
    .setIssuedAt()
    .setExpirationTime('24h')
    .sign(new TextEncoder().encode(secret));
}

export interface ServerConfigOptions {
  port: number;
  engine: 'memory' | 'sqlite';
  dataDir: string;
}

/**
 * Herald's defaults (packages/server/configs/default.json) plus only what the fuzzer needs: anonymous access and
 * public channels, a secret and key to mint credentials, the `echo` method, short heartbeats (so
 * heartbeat handling runs during a short run), quiet logs, and a handshake rate per IP that lets
 * one machine's fuzzer reconnect after each refused connection.
 */
export function serverConfig(opts: ServerConfigOptions): Record<string, unknown> {
  return {
    server: { host: '127.0.0.1', port: opts.port, demoPage: false },
    auth: { anonymous: true, jwt: { hmacSecret: FUZZ_SECRET } },
    api: { keys: [FUZZ_API_KEY] },
    // Presence (with join/leave for everyone) on the attackers' namespace, so its frames reach real members.
    channels: { public: PUBLIC_PATTERNS, clientPublish: CLIENT_PUBLISH_PATTERNS, namespaces: { fuzz: { presence: true, joinLeave: true } } },
    rpc: { echo: true },
    heartbeat: { intervalMs: 5000, pongTimeoutMs: 2000 },
    engine: { type: opts.engine, sqlite: { dataDir: opts.dataDir, synchronous: 'normal' } },
    log: { level: 'warn' },
    rateLimits: { ip: { handshakes: { perSecond: 2000, burst: 4000 } } },
    shutdown: { drainTimeoutMs: 1000 },
  };
}

/** `limits.maxMessageBytes` as the server will have it: the last `--set` of it, else the default. */
export function messageLimit(set: string[]): number {
  for (const s of [...set].reverse()) {
    const m = /^limits\.maxMessageBytes=(\d+)$/.exec(s.trim());
    if (m) return Number(m[1]);
  }
  return 65536;
}
