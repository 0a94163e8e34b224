/**
 * Operational endpoints: metrics, the API documentation, health, readiness, the demo page.
 * `/metrics` and `/docs` (everything under it) need one of `ops.keys` when any is configured;
 * `/healthz` and `/readyz` stay open for load balancers; `ops.docs: false` removes `/docs`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import { assetPath } from '../assets.js';
import type { HeraldConfig } from '../config.js';
import type { Metrics } from '../metrics.js';
import { requireApiKey } from './api-key.js';

/** The standalone browser bundle of @herald/client, or undefined when it is not installed. */
function clientBundlePath(): string | undefined {
  try {
    return createRequire(import.meta.url).resolve('@herald/client/herald-client.js');
  } catch {
    return undefined;
  }
}

export async function opsRoutes(app: FastifyInstance, opts: { config: Readonly<HeraldConfig>; metrics: Pick<Metrics, 'registry'>; ready: () => boolean }): Promise<void> {
  const { config, metrics } = opts;
  const { keys, docs } = config.ops;
  // One encapsulated scope, so the key check covers every route inside it — swagger-ui's static
  // files included — and nothing outside it.
  await app.register(async (guarded) => {
    if (keys.length > 0) guarded.addHook('onRequest', requireApiKey(keys));
    guarded.get('/metrics', { schema: { hide: true } }, async (_req, reply) => {
      void reply.header('content-type', metrics.registry.contentType);
      return metrics.registry.metrics();
    });
    if (docs) await guarded.register(swaggerUi, { routePrefix: '/docs' });
  });
  app.get('/healthz', { schema: { hide: true } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { schema: { hide: true } }, async (_req, reply) => {
    if (!opts.ready()) return reply.code(503).send({ status: 'not ready' });
    return { status: 'ready' };
  });
  if (config.server.demoPage) {
    const page = readFileSync(assetPath('public/index.html'), 'utf8');
    app.get('/', { schema: { hide: true } }, async (_req, reply) => reply.type('text/html; charset=utf-8').send(page));
    app.get('/herald-client.js', { schema: { hide: true } }, async (_req, reply) => {
      const file = clientBundlePath();
      if (!file || !existsSync(file)) return reply.code(404).type('text/plain').send('client bundle not built: run npm run build');
      return reply.type('text/javascript; charset=utf-8').send(readFileSync(file));
    });
  }
}
