/** Unauthenticated operational endpoints: metrics, health, readiness, the demo page. */
import { existsSync, readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { assetPath } from '../assets.js';
import type { HeraldNode } from '../node.js';

export async function opsRoutes(app: FastifyInstance, opts: { node: HeraldNode; ready: () => boolean }): Promise<void> {
  const { node } = opts;
  app.get('/metrics', { schema: { hide: true } }, async (_req, reply) => {
    void reply.header('content-type', node.metrics.registry.contentType);
    return node.metrics.registry.metrics();
  });
  app.get('/healthz', { schema: { hide: true } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { schema: { hide: true } }, async (_req, reply) => {
    if (!opts.ready()) return reply.code(503).send({ status: 'not ready' });
    return { status: 'ready' };
  });
  if (node.config.server.demoPage) {
    const page = readFileSync(assetPath('public/index.html'), 'utf8');
    app.get('/', { schema: { hide: true } }, async (_req, reply) => reply.type('text/html; charset=utf-8').send(page));
    app.get('/herald-client.js', { schema: { hide: true } }, async (_req, reply) => {
      const file = assetPath('client/dist/herald-client.js');
      if (!existsSync(file)) return reply.code(404).type('text/plain').send('client bundle not built: run npm run build');
      return reply.type('text/javascript; charset=utf-8').send(readFileSync(file));
    });
  }
}
