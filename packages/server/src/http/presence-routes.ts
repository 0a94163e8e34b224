/**
 * The channel-presence routes of the server API, cluster-wide (the presence store is shared by
 * every node): a page of a channel's members and its counts. Registered by `apiRoutes` inside its
 * `/api/v1` scope, so the API key, its scope (`read` suffices) and its rate limit apply.
 */
import type { FastifyInstance } from 'fastify';
import type { ChannelPresencePage, ChannelPresenceStats } from '@herald/protocol';
import { checkName } from '../channel-access.js';
import { MAX_PRESENCE_PAGE } from '../engine/channel-presence.js';
import { engineCall } from './engine-call.js';
import { DEFAULT_PRESENCE_LIMIT, type PresenceQueries } from '../presence-tracker.js';

/** What apiRoutes shares with the routes it registers: the OpenAPI pieces and the scope marker. */
export interface RouteKit {
  security: Array<Record<string, string[]>>;
  errorBody: object;
  rateLimited: object;
  needs(scope: 'read'): { apiScope: 'read' };
}

const channelParams = { type: 'object', required: ['channel'], properties: { channel: { type: 'string', minLength: 1, maxLength: 255 } } };
const member = {
  type: 'object',
  properties: { client: { type: 'string' }, user: { type: 'string' }, info: {}, channelInfo: {}, node: { type: 'string' } },
};

export async function presenceRoutes(app: FastifyInstance, presence: Pick<PresenceQueries, 'list' | 'stats'>, kit: RouteKit): Promise<void> {
  const refusals = { 400: kit.errorBody, ...kit.rateLimited, 503: kit.errorBody };

  app.get<{ Params: { channel: string }; Querystring: { cursor?: string; limit?: string } }>('/channels/:channel/presence', {
    config: kit.needs('read'),
    schema: {
      summary: "A page of a channel's members on every node, ordered by connection id (namespaces with presence on)",
      tags: ['channels'],
      security: kit.security,
      params: channelParams,
      querystring: {
        type: 'object',
        additionalProperties: false,
        properties: {
          cursor: { type: 'string', minLength: 1, maxLength: 512, description: 'The `next` of the previous page' },
          // Query values arrive as strings (no coercion on this API): 1 to 1000, digits only.
          limit: { type: 'string', pattern: '^(1000|[1-9][0-9]{0,2})$', description: `Members per page, 1–${MAX_PRESENCE_PAGE} (default ${DEFAULT_PRESENCE_LIMIT})` },
        },
      },
      response: {
        200: { type: 'object', properties: { channel: { type: 'string' }, members: { type: 'array', items: member }, next: { type: 'string' } } },
        ...refusals,
      },
    },
  }, async (req): Promise<ChannelPresencePage> => {
    const { channel } = req.params;
    checkName(channel);
    const { cursor, limit } = req.query;
    const page = await engineCall(app.log, 'reading presence', () => presence.list(channel, { ...(cursor !== undefined ? { cursor } : {}), ...(limit !== undefined ? { limit: Number(limit) } : {}) }));
    return { channel, members: page.members, ...(page.next !== undefined ? { next: page.next } : {}) };
  });

  app.get<{ Params: { channel: string } }>('/channels/:channel/presence-stats', {
    config: kit.needs('read'),
    schema: {
      summary: "A channel's members (connections) and distinct users on every node, from counters",
      tags: ['channels'],
      security: kit.security,
      params: channelParams,
      response: {
        200: { type: 'object', properties: { channel: { type: 'string' }, connections: { type: 'integer' }, users: { type: 'integer' } } },
        ...refusals,
      },
    },
  }, async (req): Promise<ChannelPresenceStats> => {
    const { channel } = req.params;
    checkName(channel);
    const s = await engineCall(app.log, 'reading presence', () => presence.stats(channel));
    return { channel, connections: s.connections, users: s.users };
  });
}
