/**
 * The webhook dead letters over the server API (`/api/v1/webhooks/…`, admin keys only): list them,
 * send one again (back to the outbox with its attempts reset), or delete one. Registered inside
 * the API routes, so the API key check and rate limit apply.
 */
import type { FastifyInstance } from 'fastify';
import { ErrorCode } from '@herald/protocol';
import { HeraldError } from '../errors.js';
import type { DeadLetterOps } from '../webhooks/index.js';
import { webhookEventType } from '../webhooks/event-type.js';
import { engineCall } from './engine-call.js';

export interface WebhookRoutesOptions {
  /** Absent when no endpoint is configured: every route answers 404 webhooks_disabled. */
  deadLetters: DeadLetterOps | undefined;
  security: Array<Record<string, string[]>>;
  errorResponse: object;
}

const MAX_LIST = 1000;

export async function webhookRoutes(app: FastifyInstance, opts: WebhookRoutesOptions): Promise<void> {
  const { security, errorResponse } = opts;
  const ops = (): DeadLetterOps => {
    if (!opts.deadLetters) throw new HeraldError(ErrorCode.WEBHOOKS_DISABLED);
    return opts.deadLetters;
  };
  const idParams = { type: 'object', required: ['id'], properties: { id: { type: 'string', minLength: 1, maxLength: 128 } } };
  const refusals = { 403: errorResponse, 404: errorResponse, 429: errorResponse, 503: errorResponse };
  const notFound = (id: string) => new HeraldError(ErrorCode.DEAD_LETTER_NOT_FOUND, `no dead letter ${id}`);

  app.get<{ Querystring: { limit?: number } }>('/dead-letters', {
    schema: {
      summary: 'Webhook events that used every attempt (oldest first)',
      tags: ['webhooks'], security,
      querystring: { type: 'object', additionalProperties: false, properties: { limit: { type: 'integer', minimum: 1, maximum: MAX_LIST, default: 100 } } },
      response: {
        200: {
          type: 'object',
          properties: {
            deadLetters: {
              type: 'array',
              items: {
                type: 'object',
                properties: {
                  id: { type: 'string' }, endpoint: { type: 'string' }, type: { type: 'string' }, key: { type: 'string' },
                  attempts: { type: 'integer' }, createdAt: { type: 'integer' }, deadAt: { type: 'integer' }, lastError: { type: 'string' },
                  body: { type: 'string' },
                },
              },
            },
          },
        },
        ...refusals,
      },
    },
  }, async (req) => {
    const list = await engineCall(app.log, 'listing dead letters', () => ops().list(req.query.limit ?? 100));
    return { deadLetters: list.map((d) => ({ ...d, type: webhookEventType(d.body) ?? '' })) };
  });

  app.post<{ Params: { id: string } }>('/dead-letters/:id/retry', {
    schema: {
      summary: 'Send a dead letter again: back to the outbox, attempts reset, due now',
      tags: ['webhooks'], security, params: idParams,
      response: { 200: { type: 'object', properties: { requeued: { type: 'boolean' } } }, ...refusals },
    },
  }, async (req) => {
    if (!(await engineCall(app.log, 'requeuing a dead letter', () => ops().retry(req.params.id)))) throw notFound(req.params.id);
    return { requeued: true };
  });

  app.delete<{ Params: { id: string } }>('/dead-letters/:id', {
    schema: {
      summary: 'Delete a dead letter',
      tags: ['webhooks'], security, params: idParams,
      response: { 200: { type: 'object', properties: { deleted: { type: 'boolean' } } }, ...refusals },
    },
  }, async (req) => {
    if (!(await engineCall(app.log, 'deleting a dead letter', () => ops().remove(req.params.id)))) throw notFound(req.params.id);
    return { deleted: true };
  });
}
