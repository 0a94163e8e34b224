/**
 * The server API for backends under `/api/v1`, authenticated by API key. Bodies are validated by
 * JSON Schema (fastify's ajv, unknown fields refused); the shapes are in `packages/server/api/publish.schema.json`
 * and the OpenAPI document served at `/docs`.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import { ErrorCode } from '@herald/protocol';
import { readJsonAsset } from '../assets.js';
import { HeraldError } from '../errors.js';
import type { AdminOps } from '../admin.js';
import type { HeraldConfig } from '../config.js';
import { ReceiptBook } from '../delivery/receipts.js';
import type { WriteScheduler } from '../write-path.js';
import type { PublishOps, PublishRequest } from '../publishing.js';
import { rateLimitedError, type RateLimits } from '../rate-limit/rate-limits.js';
import { ApiKeyring, presentedApiKey, type ApiKeyGrant, type ApiScope } from './api-key.js';
import { publishBatch } from './batch-publish.js';
import { webhookRoutes } from './webhook-routes.js';
import type { DeadLetterOps } from '../webhooks/index.js';
import { presenceRoutes } from './presence-routes.js';
import type { PresenceQueries } from '../presence-tracker.js';

const ref = (name: string) => ({ $ref: `herald:publish#/$defs/${name}` });
const errorResponses = {
  400: ref('errorResponse'),
  401: ref('errorResponse'),
  403: scopeRefused(),
  404: ref('errorResponse'),
  413: ref('errorResponse'),
  429: tooManyRequests(),
  503: ref('errorResponse'),
};
/**
 * Every route can answer 429 and 403: the API key's rate limit (`rateLimits.apiKey`) and its
 * scope are checked in the onRequest hook.
 */
const rateLimited = { 403: scopeRefused(), 429: tooManyRequests() };

function scopeRefused() {
  return { description: 'api_key_scope: the scope of the API key (api.keys) does not allow this route, or this publish target', ...ref('errorResponse') };
}

function tooManyRequests() {
  return {
    description: 'rate_limited: the API key is past rateLimits.apiKey.requests; retry after Retry-After seconds (details.retryAfterMs in ms)',
    headers: { 'Retry-After': { type: 'integer', description: 'Seconds to wait before the next request' } },
    ...ref('errorResponse'),
  };
}
const security: Array<Record<string, string[]>> = [{ apiKey: [] }, { bearer: [] }];
/**
 * The scope each route needs (api-key.ts), in the route's config where the onRequest hook reads
 * it; a route without one needs an admin key.
 */
const needs = (apiScope: ApiScope) => ({ apiScope });

declare module 'fastify' {
  interface FastifyContextConfig {
    apiScope?: ApiScope;
  }
}
/** In every cluster-wide answer: the nodes that answered within cluster.controlTimeoutMs, and those that did not. */
const nodesAnswer = {
  type: 'object',
  properties: { replied: { type: 'array', items: { type: 'string' } }, missing: { type: 'array', items: { type: 'string' } } },
};


/** What the server API uses, each from the part that owns it. */
export interface ApiRoutesOptions {
  config: Readonly<HeraldConfig>;
  rateLimits: Pick<RateLimits, 'apiRequest'>;
  publishing: PublishOps;
  /** A batch publish holds the fan-out so a connection gets the batch in one write (batch-publish.ts). */
  fanout: Pick<WriteScheduler, 'hold' | 'release' | 'heldFanoutMs'>;
  admin: AdminOps;
  receipts: Pick<ReceiptBook, 'get'>;
  /** The webhook dead letters; absent when webhooks are not configured. */
  deadLetters?: DeadLetterOps | undefined;
  /** Channel presence (presence-tracker.ts); its routes are in presence-routes.ts. */
  presence?: Pick<PresenceQueries, 'list' | 'stats'>;
}

export async function apiRoutes(app: FastifyInstance, opts: ApiRoutesOptions): Promise<void> {
  const { config, rateLimits, publishing, fanout, admin, receipts } = opts;
  const keyring = new ApiKeyring(config.api.keys);
  // The grant of each admitted request, for the publish routes' channel check.
  const grants = new WeakMap<FastifyRequest, ApiKeyGrant>();
  app.addSchema(readJsonAsset('api/publish.schema.json'));
  // JSON only: a text/plain body would otherwise reach the schema as a string.
  app.removeContentTypeParser('text/plain');

  // Disconnect bodies are optional: an empty POST means "defaults". Only those routes run it.
  const defaultEmptyBody = (req: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction): void => {
    if (req.body === undefined) req.body = {};
    done();
  };

  // Callback style rather than async: every API request runs it, and a promise per request is
  // measurable on the publish path.
  app.addHook('onRequest', (req, _reply, done) => {
    const key = presentedApiKey(req.headers);
    if (!key) return done(new HeraldError(ErrorCode.API_KEY_REQUIRED));
    const grant = keyring.find(key);
    if (!grant) return done(new HeraldError(ErrorCode.INVALID_API_KEY));
    const limited = rateLimits.apiRequest(key);
    if (limited) return done(rateLimitedError(limited));
    // No route matched: fastify's 404 stays the answer, whatever the key's scope.
    if (req.routeOptions.url !== undefined) {
      const refused = grant.routeRefusal(req.routeOptions.config.apiScope ?? 'admin');
      if (refused) return done(refused);
    }
    grants.set(req, grant);
    done();
  });

  if (opts.presence) await presenceRoutes(app, opts.presence, { security, errorBody: ref('errorResponse'), rateLimited, needs: (s) => ({ apiScope: s }) });

  app.post<{ Body: PublishRequest }>('/publish', {
    config: needs('publish'),
    schema: {
      summary: 'Publish one message to a channel, a user, or everyone (optionally filtered by tags)',
      tags: ['publish'],
      security,
      body: ref('publishRequest'),
      response: { 200: ref('publishResult'), ...errorResponses },
    },
  }, async (req) => {
    const refused = grants.get(req)?.publishRefusal(req.body);
    if (refused) throw refused;
    return publishing.publish(req.body);
  });

  app.post<{ Body: { messages: PublishRequest[] } }>('/publish/batch', {
    config: needs('publish'),
    schema: {
      summary: 'Publish several messages in order; each gets its own result or error',
      tags: ['publish'],
      security,
      body: {
        type: 'object', additionalProperties: false, required: ['messages'],
        properties: { messages: { type: 'array', minItems: 1, maxItems: 1000, items: ref('publishRequest') } },
      },
      response: {
        200: {
          type: 'object',
          properties: {
            results: {
              type: 'array',
              items: {
                type: 'object',
                properties: {
                  msgId: { type: 'string' }, timestamp: { type: 'integer' }, duplicate: { type: 'boolean' },
                  position: { type: 'object', properties: { offset: { type: 'integer' }, epoch: { type: 'string' } } },
                  error: { type: 'object', properties: { code: { type: 'string' }, message: { type: 'string' }, temporary: { type: 'boolean' }, details: {} } },
                },
              },
            },
          },
        },
        ...errorResponses,
      },
    },
  }, async (req) => {
    // Every message is checked before any is published: a batch with one message out of the
    // key's channels is refused whole.
    const grant = grants.get(req);
    for (const [index, m] of req.body.messages.entries()) {
      const refused = grant?.publishRefusal(m);
      if (refused) throw new HeraldError(refused.code, `messages[${index}]: ${refused.message}`, { ...(refused.details as object), index });
    }
    return { results: await publishBatch(publishing, fanout, req.body.messages) };
  });

  app.get<{ Querystring: { prefix?: string } }>('/channels', {
    config: needs('read'),
    schema: {
      summary: 'Channels with subscribers on any node, with their counts summed over the cluster',
      tags: ['channels'], security,
      querystring: { type: 'object', additionalProperties: false, properties: { prefix: { type: 'string', maxLength: 255 } } },
      response: {
        200: {
          type: 'object',
          properties: {
            channels: { type: 'array', items: { type: 'object', properties: { channel: { type: 'string' }, subscribers: { type: 'integer' } } } },
            nodes: nodesAnswer,
          },
        },
        ...rateLimited,
      },
    },
  }, async (req) => {
    const prefix = req.query.prefix ?? '';
    const { channels, nodes } = await admin.channels();
    return { channels: channels.filter((c) => c.channel.startsWith(prefix)).sort((a, b) => (a.channel < b.channel ? -1 : 1)), nodes };
  });

  const connectionSchema = {
    type: 'object',
    properties: {
      connectionId: { type: 'string' }, user: { type: 'string' }, node: { type: 'string' }, connectedAt: { type: 'integer' },
      remoteAddress: { type: 'string' }, tags: { type: 'object', additionalProperties: true }, channels: { type: 'array', items: { type: 'string' } },
    },
  };
  const userParams = { type: 'object', required: ['user'], properties: { user: { type: 'string', minLength: 1, maxLength: 256 } } };
  const connParams = { type: 'object', required: ['id'], properties: { id: { type: 'string', minLength: 1, maxLength: 128 } } };
  const disconnectBody = {
    type: 'object', additionalProperties: false,
    properties: { reconnect: { type: 'boolean', default: false }, reason: { type: 'string', maxLength: 120 } },
  };

  app.get<{ Params: { user: string } }>('/users/:user/connections', {
    config: needs('read'),
    schema: { summary: "A user's live connections (all devices)", tags: ['users'], security, params: userParams, response: { 200: { type: 'object', properties: { connections: { type: 'array', items: connectionSchema } } }, ...rateLimited } },
  }, async (req) => {
    // Local sessions are exact; presence adds the user's connections on other nodes.
    return { connections: await admin.userConnections(req.params.user) };
  });

  app.post<{ Params: { user: string }; Body: { reconnect?: boolean; reason?: string } }>('/users/:user/disconnect', {
    preValidation: defaultEmptyBody,
    schema: { summary: "Close all of a user's connections on every node", tags: ['users'], security, params: userParams, body: disconnectBody, response: { 200: { type: 'object', properties: { disconnected: { type: 'integer' }, nodes: nodesAnswer } }, ...rateLimited } },
  }, async (req) => admin.disconnectUser(req.params.user, req.body?.reconnect ?? false, req.body?.reason));

  app.post<{ Params: { id: string }; Body: { reconnect?: boolean; reason?: string } }>('/connections/:id/disconnect', {
    preValidation: defaultEmptyBody,
    schema: { summary: 'Close one connection, on whichever node holds it', tags: ['connections'], security, params: connParams, body: disconnectBody, response: { 200: { type: 'object', properties: { disconnected: { type: 'integer' }, nodes: nodesAnswer } }, 404: ref('errorResponse'), ...rateLimited } },
  }, async (req) => {
    const r = await admin.disconnectConnection(req.params.id, req.body?.reconnect ?? false, req.body?.reason);
    if (r.disconnected === 0) {
      const missing = r.nodes.missing.length > 0 ? `; no answer from ${r.nodes.missing.join(', ')} within cluster.controlTimeoutMs` : '';
      throw new HeraldError(ErrorCode.CONNECTION_NOT_FOUND, `no connection ${req.params.id} in the cluster${missing}`, { nodes: r.nodes });
    }
    return r;
  });

  app.post<{ Params: { id: string }; Body: { method: string; data?: unknown; timeoutMs?: number } }>('/connections/:id/request', {
    schema: {
      summary: 'Send a request to one client connection on any node and wait for its response (correlationId matched)',
      tags: ['connections'], security, params: connParams,
      body: {
        type: 'object', additionalProperties: false, required: ['method'],
        properties: { method: { type: 'string', minLength: 1, maxLength: 128 }, data: {}, timeoutMs: { type: 'integer', minimum: 1, maximum: 120000 } },
      },
      response: { 200: { type: 'object', properties: { data: {}, error: { type: 'object', additionalProperties: true } } }, 404: ref('errorResponse'), 504: ref('errorResponse'), ...rateLimited },
    },
  }, async (req) => {
    const r = await admin.requestClient(req.params.id, req.body.method, req.body.data, req.body.timeoutMs);
    return r.error !== undefined ? { error: r.error } : { data: r.data ?? null };
  });

  app.get<{ Params: { msgId: string } }>('/messages/:msgId', {
    config: needs('read'),
    schema: {
      summary: 'Delivery receipt of an at-least-once message: delivered, acknowledged (by whom, when), in inboxes, retries exhausted',
      tags: ['publish'], security,
      params: { type: 'object', required: ['msgId'], properties: { msgId: { type: 'string', minLength: 1, maxLength: 128 } } },
      response: { 200: { type: 'object', additionalProperties: true }, 404: ref('errorResponse'), ...rateLimited },
    },
  }, async (req) => {
    const r = receipts.get(req.params.msgId);
    if (!r) throw new HeraldError(ErrorCode.NOT_FOUND, `no receipt for ${req.params.msgId}: unknown, at-most-once, or older than delivery.receiptTtlMs`);
    return ReceiptBook.view(r);
  });

  app.get('/stats', {
    config: needs('read'),
    schema: {
      summary: "Counters of this node (top level), of every node (byNode) and the cluster's totals",
      tags: ['ops'], security,
      response: {
        200: {
          type: 'object', additionalProperties: true,
          properties: {
            totals: { type: 'object', additionalProperties: { type: 'number' } },
            byNode: { type: 'array', items: { type: 'object', additionalProperties: true } },
            nodes: nodesAnswer,
          },
        },
        ...rateLimited,
      },
    },
  }, async () => admin.stats());

  app.get('/nodes', {
    config: needs('read'),
    schema: {
      summary: 'The live nodes of the cluster, from their heartbeats',
      tags: ['ops'], security,
      response: {
        200: {
          type: 'object',
          properties: {
            nodes: {
              type: 'array',
              items: {
                type: 'object',
                properties: {
                  node: { type: 'string' }, version: { type: 'string' }, startedAt: { type: 'integer' }, uptimeSeconds: { type: 'integer' },
                  connections: { type: 'integer' }, lastHeartbeat: { type: 'integer' },
                },
              },
            },
          },
        },
        ...rateLimited,
      },
    },
  }, async () => ({ nodes: admin.nodes() }));

  // Admin keys only (no apiScope in their route config).
  await app.register(webhookRoutes, { prefix: '/webhooks', deadLetters: opts.deadLetters, security, errorResponse: ref('errorResponse') });
}
