/**
 * Starter configurations for `herald config init`. JSON has no comments, so each profile carries
 * a `$comment` and an explanation per key that the command prints to stderr (docs/cli.md has the
 * same list). Secrets are generated fresh on every run: a starter never ships a known secret.
 */
import { randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { assetPath } from '../assets.js';

export type Profile = 'dev' | 'production';

export interface Starter {
  config: Record<string, unknown>;
  notes: Array<[key: string, why: string]>;
}

const secret = (): string => randomBytes(32).toString('base64url');

/** `"$schema"`: the installed api/config.schema.json, so editors complete and check the file. */
function schemaReference(): Record<string, string> {
  return { $schema: pathToFileURL(assetPath('api/config.schema.json')).href };
}

export function starterConfig(profile: Profile): Starter {
  const starter = profileConfig(profile);
  return { ...starter, config: { ...schemaReference(), ...starter.config } };
}

function profileConfig(profile: Profile): Starter {
  if (profile === 'dev') {
    return {
      config: {
        $comment: 'herald config init --profile dev: a local development server. Not for production; see docs/cli.md.',
        server: { host: '127.0.0.1', port: 8080, demoPage: true },
        auth: { anonymous: true, jwt: { hmacSecret: secret() } },
        api: { keys: [secret()] },
        origins: { allowed: [] },
        channels: { public: ['demo:*'], clientPublish: ['demo:*'] },
        engine: { type: 'memory' },
        rpc: { echo: true },
        log: { level: 'info' },
      },
      notes: [
        ['server.host', '127.0.0.1: reachable from this machine only'],
        ['server.demoPage', 'serves the demo page at /'],
        ['auth.anonymous', 'browsers connect without a token (to channels.public only)'],
        ['auth.jwt.hmacSecret', 'generated; mint test tokens with `herald token --config <this file> --user alice`'],
        ['api.keys', 'generated; the Bearer key for /api/v1 and `herald publish --key`'],
        ['origins.allowed', 'empty: pages served by this server (same origin, under an IP address or localhost) may connect, on any port'],
        ['channels.public / channels.clientPublish', 'channels anonymous clients may subscribe to / publish on'],
        ['engine.type', 'memory: nothing survives a restart'],
      ],
    };
  }
  return {
    config: {
      $comment: 'herald config init --profile production: one node behind a TLS reverse proxy. Replace origins.allowed; see docs/cli.md and docs/security.md.',
      server: { host: '0.0.0.0', port: 8080, demoPage: false, trustProxy: 1 },
      auth: { anonymous: false, jwt: { hmacSecret: secret(), requireExp: true } },
      api: { keys: [secret()] },
      ops: { keys: [secret()], docs: false },
      origins: { allowed: ['https://app.example.com'] },
      engine: { type: 'sqlite', sqlite: { dataDir: '/var/lib/herald', synchronous: 'full' } },
      log: { level: 'info' },
      shutdown: { drainTimeoutMs: 30000 },
    },
    notes: [
      ['server.host', '0.0.0.0: listen on every interface (put a TLS proxy in front)'],
      ['server.trustProxy', '1: the client IP is taken from the X-Forwarded-For your one proxy sets'],
      ['auth.jwt.hmacSecret', 'generated; your backend signs connection tokens with it (or use auth.jwt.publicKeyFile / jwksFile)'],
      ['api.keys', 'generated; your backend publishes with it'],
      ['ops.keys', 'generated; /metrics needs it (Prometheus: authorization bearer)'],
      ['ops.docs', 'false: no Swagger UI in production'],
      ['origins.allowed', 'REPLACE https://app.example.com with the origins of your web pages'],
      ['engine.type', 'sqlite: history and inboxes survive restarts in engine.sqlite.dataDir (use redis or nats for a cluster)'],
      ['shutdown.drainTimeoutMs', 'time given to clients to move away on SIGTERM'],
    ],
  };
}
