/**
 * The admin web UI at /admin: its page and bundled assets, and the JSON endpoints under
 * /admin/api/* it calls. The endpoints reuse the operations the server API uses (admin.ts for the
 * cluster, publishing.ts, the receipt book, the inbox store) through the narrow interfaces below;
 * what differs from /api/v1 is only how a caller is admitted (a session cookie from a login, and
 * the CSRF rule on every call that changes something — guard.ts).
 *
 * Registered only when `admin.ui.enabled`: otherwise /admin is fastify's 404 like any unknown path.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ErrorCode } from '@herald/protocol';
import type { AdminOps } from '../../admin.js';
import { assetPath, readJsonAsset } from '../../assets.js';
import type { HeraldConfig } from '../../config.js';
import { ReceiptBook } from '../../delivery/receipts.js';
import type { InboxStore } from '../../engine/inbox.js';
import { HeraldError } from '../../errors.js';
import type { PublishOps, PublishRequest } from '../../publishing.js';
import { AdminGuard } from './guard.js';
import type { AdminSampler } from './sampler.js';
import type { AdminSession } from './sessions.js';

/** Presence counts per channel; absent until the node has presence (the UI then shows no column). */
export type PresenceCounts = (channels: string[]) => Promise<Map<string, number>>;

export interface AdminUiOptions {
  config: Readonly<HeraldConfig>;
  nodeName: string;
  admin: Pick<AdminOps, 'channels' | 'userConnections' | 'disconnectConnection' | 'disconnectUser' | 'stats' | 'nodes'>;
  publishing: Pick<PublishOps, 'publish'>;
  receipts: Pick<ReceiptBook, 'get'>;
  inbox: Pick<InboxStore, 'list' | 'size'>;
  sampler: Pick<AdminSampler, 'samples'>;
  presenceCounts?: PresenceCounts;
  log: { warn(obj: object, msg: string): void };
}

/** The files the build writes to admin-ui/dist (scripts/build-admin-ui.mjs), by URL name. */
const ASSETS: Record<string, string> = {
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
};

/**
 * Only this server's own scripts, styles and API; inline script and style elements refused;
 * never framed. Styles set from script (preact's style props, uPlot's layout) are CSSOM writes,
 * which style-src does not govern.
 */
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

function pageHeaders(reply: FastifyReply): void {
  void reply
    .header('content-security-policy', CSP)
    .header('x-frame-options', 'DENY')
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    .header('cross-origin-opener-policy', 'same-origin')
    .header('cross-origin-resource-policy', 'same-origin');
}

declare module 'fastify' {
  interface FastifyRequest {
    adminSession?: AdminSession;
  }
}

const hide = { hide: true };
const userParams = { type: 'object', required: ['user'], properties: { user: { type: 'string', minLength: 1, maxLength: 256 } } };
const disconnectBody = { type: 'object', additionalProperties: false, properties: { reconnect: { type: 'boolean', default: false } } };

export async function adminUiRoutes(app: FastifyInstance, o: AdminUiOptions): Promise<void> {
  const guard = new AdminGuard(o.config.admin.ui, o.config.api.keys);
  const files = new Map<string, Buffer>();
  for (const name of ['index.html', ...Object.keys(ASSETS)]) {
    const path = assetPath(`admin-ui/dist/${name}`);
    if (existsSync(path)) files.set(name, readFileSync(path));
  }
  if (files.size < Object.keys(ASSETS).length + 1) o.log.warn({ dir: assetPath('admin-ui/dist') }, 'admin.ui.enabled but the admin UI is not built (run npm run build): /admin answers 503');

  const page = async (_req: FastifyRequest, reply: FastifyReply) => {
    pageHeaders(reply);
    const html = files.get('index.html');
    if (!html) return reply.code(503).type('text/plain; charset=utf-8').send('The admin UI is not built: run npm run build');
    return reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').send(html);
  };
  app.get('/admin', { schema: hide }, page);
  app.get('/admin/', { schema: hide }, page);
  app.get<{ Params: { file: string } }>('/admin/assets/:file', { schema: hide }, async (req, reply) => {
    const type = ASSETS[req.params.file];
    const body = type ? files.get(req.params.file) : undefined;
    if (!type || !body) throw new HeraldError(ErrorCode.NOT_FOUND, `no admin UI asset ${req.params.file}`);
    pageHeaders(reply);
    return reply.type(type).header('cache-control', 'no-cache').send(body);
  });

  await app.register(async (api) => {
    api.addSchema(readJsonAsset('api/publish.schema.json'));
    api.removeContentTypeParser('text/plain');
    api.addHook('onRequest', async (req, reply) => {
      void reply.header('cache-control', 'no-store');
      pageHeaders(reply);
      const isLogin = req.routeOptions.url === '/admin/api/login';
      const session = isLogin ? undefined : guard.session(req);
      if (req.method !== 'GET' && req.method !== 'HEAD') guard.checkCsrf(req, session);
      req.adminSession = session;
    });
    const sessionView = (s: AdminSession) => ({ csrf: s.csrf, via: s.via, node: o.nodeName, expiresAt: s.createdAt + o.config.admin.ui.sessionTtlMs });

    api.post<{ Body: { credential: string } }>('/admin/api/login', {
      schema: { ...hide, body: { type: 'object', additionalProperties: false, required: ['credential'], properties: { credential: { type: 'string', minLength: 1, maxLength: 1024 } } } },
    }, async (req, reply) => {
      let via: string;
      try {
        via = await guard.login(req.ip, req.body.credential);
      } catch (err) {
        req.log.warn({ ip: req.ip, code: (err as HeraldError).code }, 'admin UI login refused');
        throw err;
      }
      req.log.info({ ip: req.ip, via }, 'admin UI login');
      // A login replaces the session the browser had, so a fixed id from before cannot carry over.
      guard.sessions.delete(guard.cookieOf(req));
      const { id, session } = guard.sessions.create(via);
      guard.setCookie(req, reply, id);
      return sessionView(session);
    });
    api.post('/admin/api/logout', { schema: hide }, async (req, reply) => {
      guard.sessions.delete(guard.cookieOf(req));
      guard.clearCookie(req, reply);
      return { loggedOut: true };
    });
    api.get('/admin/api/session', { schema: hide }, async (req) => sessionView(req.adminSession!));

    api.get('/admin/api/overview', { schema: hide }, async () => {
      const stats = (await o.admin.stats()) as { totals?: Record<string, number>; nodes?: unknown };
      return { node: o.nodeName, samples: o.sampler.samples(), totals: stats.totals ?? {}, nodes: stats.nodes };
    });
    api.get('/admin/api/nodes', { schema: hide }, async () => {
      const stats = (await o.admin.stats()) as { byNode?: Array<Record<string, unknown>>; nodes?: unknown };
      return { node: o.nodeName, beats: o.admin.nodes(), byNode: stats.byNode ?? [], nodes: stats.nodes };
    });
    api.get<{ Querystring: { prefix?: string; limit?: number } }>('/admin/api/channels', {
      schema: { ...hide, querystring: { type: 'object', additionalProperties: false, properties: { prefix: { type: 'string', maxLength: 255 }, limit: { type: 'integer', minimum: 1, maximum: 5000, default: 500 } } } },
    }, async (req) => {
      const prefix = req.query.prefix ?? '';
      const { channels, nodes } = await o.admin.channels();
      const matching = channels.filter((c) => c.channel.startsWith(prefix)).sort((a, b) => b.subscribers - a.subscribers || (a.channel < b.channel ? -1 : 1));
      const shown = matching.slice(0, req.query.limit ?? 500);
      const presence = o.presenceCounts ? await o.presenceCounts(shown.map((c) => c.channel)) : undefined;
      return {
        // Only channels whose namespace keeps presence (and that were counted) get a number: a 0
        // would claim nobody is present where nobody is tracked.
        channels: shown.map((c) => {
          const present = presence?.get(c.channel);
          return present !== undefined ? { ...c, presence: present } : c;
        }),
        total: matching.length,
        presence: presence !== undefined,
        nodes,
      };
    });
    api.get<{ Params: { user: string } }>('/admin/api/users/:user/connections', { schema: { ...hide, params: userParams } }, async (req) => ({
      connections: await o.admin.userConnections(req.params.user),
    }));
    api.post<{ Params: { user: string }; Body: { reconnect?: boolean } }>('/admin/api/users/:user/disconnect', {
      schema: { ...hide, params: userParams, body: disconnectBody },
    }, async (req) => {
      req.log.info({ ip: req.ip, user: req.params.user, reconnect: req.body.reconnect === true }, 'admin UI: disconnect user');
      return o.admin.disconnectUser(req.params.user, req.body.reconnect === true, 'disconnected from the admin UI');
    });
    api.post<{ Params: { id: string }; Body: { reconnect?: boolean } }>('/admin/api/connections/:id/disconnect', {
      schema: { ...hide, params: { type: 'object', required: ['id'], properties: { id: { type: 'string', minLength: 1, maxLength: 128 } } }, body: disconnectBody },
    }, async (req) => {
      req.log.info({ ip: req.ip, connectionId: req.params.id, reconnect: req.body.reconnect === true }, 'admin UI: disconnect connection');
      const r = await o.admin.disconnectConnection(req.params.id, req.body.reconnect === true, 'disconnected from the admin UI');
      if (r.disconnected === 0) throw new HeraldError(ErrorCode.CONNECTION_NOT_FOUND, `no connection ${req.params.id} in the cluster`, { nodes: r.nodes });
      return r;
    });
    api.post<{ Body: PublishRequest }>('/admin/api/publish', {
      schema: { ...hide, body: { $ref: 'herald:publish#/$defs/publishRequest' } },
    }, async (req) => {
      const result = await o.publishing.publish(req.body);
      const { channel, user, broadcast } = req.body;
      req.log.info({ ip: req.ip, msgId: result.msgId, channel, user, broadcast }, 'admin UI: publish');
      return result;
    });
    api.get<{ Params: { msgId: string } }>('/admin/api/messages/:msgId', {
      schema: { ...hide, params: { type: 'object', required: ['msgId'], properties: { msgId: { type: 'string', minLength: 1, maxLength: 128 } } } },
    }, async (req) => {
      const r = o.receipts.get(req.params.msgId);
      if (!r) throw new HeraldError(ErrorCode.NOT_FOUND, `no receipt for ${req.params.msgId}: unknown, at-most-once, or older than delivery.receiptTtlMs`);
      return ReceiptBook.view(r);
    });
    api.get<{ Params: { user: string }; Querystring: { after?: number; limit?: number } }>('/admin/api/users/:user/inbox', {
      schema: {
        ...hide, params: userParams,
        querystring: { type: 'object', additionalProperties: false, properties: { after: { type: 'integer', minimum: 0, default: 0 }, limit: { type: 'integer', minimum: 1, maximum: 500, default: 100 } } },
      },
    }, async (req) => {
      const { entries } = await o.inbox.list(req.params.user, req.query.after ?? 0, req.query.limit ?? 100, o.config.inbox);
      return { user: req.params.user, size: await o.inbox.size(req.params.user), entries };
    });
    // Inside the guarded scope, so an unknown /admin/api path without a session is 401 like the rest.
    api.all('/admin/api/*', { schema: hide }, async (req) => {
      throw new HeraldError(ErrorCode.NOT_FOUND, `no admin API route ${req.method} ${req.url.split('?')[0]}`);
    });
  });
}
