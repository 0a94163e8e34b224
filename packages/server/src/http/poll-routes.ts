/**
 * Client-facing HTTP polling: the fallback for clients that cannot hold a
 * WebSocket and the parallel-run path of a REST-to-WebSocket migration. Authenticated with the
 * same JWT as the socket (`Authorization: Bearer <token>`), it reads the same channel history and
 * user inbox that recovery uses. `wait` turns a poll into a long poll that returns as soon as a
 * message arrives.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ErrorCode } from '@herald/protocol';
import type { Identity, TokenVerifier } from '../auth.js';
import type { ChannelAccess } from '../channel-access.js';
import type { HeraldConfig } from '../config.js';
import type { ReliableDelivery } from '../delivery/reliable-delivery.js';
import type { ChannelWaits } from '../dispatch.js';
import type { InboxStore } from '../engine/inbox.js';
import { HeraldError } from '../errors.js';
import { historyMessageFrame } from '../message-frame.js';
import { rateLimitedError, type RateLimits } from '../rate-limit/rate-limits.js';
import type { HistoryReads } from '../subscriptions.js';
import type { ClientIps } from './client-ip.js';

/** What polling uses, each from the part that owns it. */
export interface PollRoutesOptions {
  config: Readonly<HeraldConfig>;
  verifier: Pick<TokenVerifier, 'verify'>;
  anonymousIdentity(): Identity;
  rateLimits: Pick<RateLimits, 'pollRequest'>;
  clientIps: Pick<ClientIps, 'key'>;
  access: ChannelAccess;
  history: HistoryReads;
  waits: ChannelWaits;
  inbox: Pick<InboxStore, 'list'>;
  acks: Pick<ReliableDelivery, 'ackInbox'>;
}

const MAX_WAIT_MS = 30_000;
// Query strings arrive as text and bodies are validated without type coercion, so numeric query
// parameters are declared as digit strings and converted here.
const digits = (description: string) => ({ type: 'string', pattern: '^[0-9]{1,15}$', description });

function int(raw: string | undefined, fallback: number, max = Number.MAX_SAFE_INTEGER): number {
  return raw === undefined ? fallback : Math.min(Number(raw), max);
}

/** Identities established by the authentication hook, before the body was read. */
const identities = new WeakMap<FastifyRequest, Identity>();

async function authenticate(poll: PollRoutesOptions, req: FastifyRequest): Promise<Identity> {
  const auth = req.headers.authorization;
  const token = auth?.startsWith('Bearer ') ? auth.slice(7).trim() : undefined;
  if (token) return poll.verifier.verify(token);
  if (poll.config.auth.anonymous) return poll.anonymousIdentity();
  throw new HeraldError(ErrorCode.UNAUTHORIZED, 'send the connection token as "Authorization: Bearer <jwt>"');
}

/** The identity of a poll request, as the authentication hook verified (and rate-limited) it. */
async function identify(poll: PollRoutesOptions, req: FastifyRequest): Promise<Identity> {
  const known = identities.get(req);
  if (known) return known;
  const identity = await authenticate(poll, req);
  checkPollRateLimit(poll, identity, req);
  return identity;
}

/** `rateLimits.poll`: per user, per client IP (grouped like the per-IP limits) for anonymous clients; throws `rate_limited` (429 with Retry-After). */
function checkPollRateLimit(poll: PollRoutesOptions, identity: Identity, req: FastifyRequest): void {
  const limited = poll.rateLimits.pollRequest(identity.user, poll.clientIps.key(req));
  if (limited) throw rateLimitedError(limited);
}

/** The error body every poll route may answer with 429 (shown in /docs). */
const rateLimitedResponse = {
  429: {
    description: 'rate_limited: this client is past rateLimits.poll.requests; retry after Retry-After seconds (details.retryAfterMs in ms)',
    headers: { 'Retry-After': { type: 'integer', description: 'Seconds to wait before the next request' } },
    type: 'object',
    properties: { error: { type: 'object', properties: { code: { type: 'string' }, message: { type: 'string' }, temporary: { type: 'boolean' }, details: {} } } },
  },
};

export async function pollRoutes(app: FastifyInstance, poll: PollRoutesOptions): Promise<void> {

  // Authenticate on the request head, before any body is read: an unauthenticated client cannot
  // hold a connection open by trickling a body. A refused request also closes its connection, so
  // its unread body is never waited for.
  app.addHook('onRequest', async (req, reply) => {
    let identity: Identity;
    try {
      identity = await authenticate(poll, req);
    } catch (err) {
      void reply.header('connection', 'close');
      throw err;
    }
    // Also before the body: a client past its rate limit is not read from either.
    checkPollRateLimit(poll, identity, req);
    identities.set(req, identity);
  });

  app.get<{ Params: { channel: string }; Querystring: { since?: string; epoch?: string; limit?: string; wait?: string } }>('/channels/:channel/messages', {
    schema: {
      summary: 'Poll a channel: messages after a position (the same history recovery uses)',
      tags: ['polling'],
      security: [{ bearer: [] }],
      params: { type: 'object', required: ['channel'], properties: { channel: { type: 'string', minLength: 1, maxLength: 255 } } },
      querystring: {
        type: 'object', additionalProperties: false,
        properties: {
          since: digits('offset of the last message seen; omit for the newest `limit`'),
          epoch: { type: 'string', maxLength: 64, description: 'epoch of that offset (required with since)' },
          limit: digits('at most this many messages (1–1000, default 100)'),
          wait: digits(`long poll: hold up to this many ms (at most ${MAX_WAIT_MS}) for a new message`),
        },
      },
      response: rateLimitedResponse,
    },
  }, async (req) => {
    const identity = await identify(poll, req);
    const { channel } = req.params;
    poll.access.checkRead(identity, channel, 'read');
    const since = req.query.since === undefined ? undefined : Number(req.query.since);
    const { epoch } = req.query;
    const limit = Math.max(1, int(req.query.limit, 100, 1000));
    const wait = int(req.query.wait, 0, MAX_WAIT_MS);
    if (since !== undefined && epoch === undefined) throw new HeraldError(ErrorCode.BAD_REQUEST, 'give "epoch" together with "since"');
    const read = () => poll.history.readHistory(channel, limit, since !== undefined ? { offset: since, epoch: epoch! } : undefined);
    let result = await read();
    if (wait > 0 && result.complete && result.entries.length === 0 && since !== undefined) {
      await poll.waits.waitForChannel(channel, wait);
      result = await read();
    }
    return {
      channel,
      position: result.position,
      recovered: result.complete,
      messages: result.entries.map((e) => historyMessageFrame(channel, result.position.epoch, e)),
    };
  });

  app.get<{ Querystring: { after?: string; limit?: string } }>('/inbox', {
    schema: {
      summary: "Poll the user's inbox (at-least-once messages waiting for acknowledgement)",
      tags: ['polling'],
      security: [{ bearer: [] }],
      querystring: {
        type: 'object', additionalProperties: false,
        properties: { after: digits('inbox seq of the last message seen (default 0)'), limit: digits('at most this many (1–1000, default 100)') },
      },
      response: rateLimitedResponse,
    },
  }, async (req) => {
    const identity = await identify(poll, req);
    if (!identity.user) throw new HeraldError(ErrorCode.UNAUTHORIZED, 'anonymous clients have no inbox');
    const { entries } = await poll.inbox.list(identity.user, int(req.query.after, 0), Math.max(1, int(req.query.limit, 100, 1000)), poll.config.inbox);
    return {
      messages: entries.map((e) => ({ seq: e.seq, ...(e.channel ? { channel: e.channel } : {}), message: e.envelope })),
    };
  });

  app.post<{ Body: { msgIds: string[] } }>('/inbox/ack', {
    schema: {
      summary: "Acknowledge messages in the user's inbox (removes them)",
      tags: ['polling'],
      security: [{ bearer: [] }],
      body: { type: 'object', additionalProperties: false, required: ['msgIds'], properties: { msgIds: { type: 'array', minItems: 1, maxItems: 1000, items: { type: 'string', minLength: 1, maxLength: 128 } } } },
      response: {
        200: {
          type: 'object',
          required: ['removed', 'refused'],
          properties: {
            removed: { type: 'integer', description: 'How many messages this acknowledged (and removed from the inbox)' },
            refused: {
              type: 'array', items: { type: 'string' },
              description: "The msgIds that acknowledged nothing: not in this user's inbox (unknown, already acknowledged, expired, or another user's — not told apart)",
            },
          },
        },
        ...rateLimitedResponse,
      },
    },
  }, async (req) => {
    const identity = await identify(poll, req);
    if (!identity.user) throw new HeraldError(ErrorCode.UNAUTHORIZED, 'anonymous clients have no inbox');
    // The delivery module decides what this user may acknowledge (their inbox) and records it.
    const acknowledged = new Set(await poll.acks.ackInbox(identity.user, req.body.msgIds));
    return { removed: acknowledged.size, refused: [...new Set(req.body.msgIds)].filter((id) => !acknowledged.has(id)) };
  });
}
