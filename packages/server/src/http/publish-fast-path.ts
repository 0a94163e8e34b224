/**
 * `POST /api/v1/publish` answered straight from Node's HTTP server, without fastify's request
 * pipeline (routing, hooks, content-type parsing, reply serialization): on a publish with few
 * recipients that pipeline costs more CPU than the publish itself (see BENCHMARKS.md, "publish
 * path"). The answer is the same, byte for byte — status, content type and body, including every
 * error — which `packages/server/test/publish-fast-path.test.ts` checks against fastify's route for the same
 * requests.
 *
 * Only the plain case is taken: the exact path, a JSON content type, a Content-Length within the
 * body limit and a valid API key whose scope allows publishing. Anything else (chunked bodies, a
 * missing or wrong key, a read-only key, another media type, a query string) goes to fastify
 * untouched, since nothing has been read yet.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ValidateFunction } from 'ajv';
import secureJson from 'secure-json-parse';
import type { Logger } from 'pino';
import { ErrorCode } from '@herald/protocol';
import { HeraldError } from '../errors.js';
import { rateLimitedError, retryAfterHeader } from '../rate-limit/rate-limits.js';
import type { HeraldNode, PublishRequest, PublishResult } from '../node.js';
import { presentedApiKey, type ApiKeyring } from './api-key.js';
import { toHeraldError } from './error-handler.js';
import { tooDeepBody } from './json-body.js';
import { exceedsJsonDepth } from '../json-depth.js';

export const PUBLISH_PATH = '/api/v1/publish';

/** What the fast path needs of the node: publishing, the API rate limit, client addresses, its limits and counter. */
export type FastPathNode = Pick<HeraldNode, 'publish' | 'rateLimits' | 'clientIps' | 'config' | 'metrics'>;

export interface PublishFastPathOptions {
  node: FastPathNode;
  keyring: ApiKeyring;
  /** fastify's bodyLimit: larger bodies go to fastify, which refuses them. */
  bodyLimit: number;
  /** The publishRequest schema compiled like fastify compiles route schemas. */
  validate: ValidateFunction;
  log: Logger;
}

/** Returns a listener that answers the request and returns true, or returns false to pass it on. */
export function publishFastPath(opts: PublishFastPathOptions): (req: IncomingMessage, res: ServerResponse) => boolean {
  const { node, keyring, bodyLimit, validate, log } = opts;
  let nextId = 0;

  return (req, res) => {
    if (req.method !== 'POST' || req.url !== PUBLISH_PATH) return false;
    const headers = req.headers;
    if (headers['transfer-encoding'] !== undefined || !isJson(headers['content-type'])) return false;
    const length = Number(headers['content-length']);
    if (!Number.isInteger(length) || length < 0 || length > bodyLimit) return false;
    const key = presentedApiKey(headers);
    if (key === undefined) return false;
    const grant = keyring.find(key);
    // A key whose scope has no publish is fastify's to refuse (its onRequest hook): nothing is read yet.
    if (grant === undefined || grant.routeRefusal('publish') !== undefined) return false;
    node.metrics.publishFastPath.inc();

    // Request logs like fastify's own, only when they would be written.
    const reqLog = log.isLevelEnabled('info') ? log.child({ reqId: `pub-${(nextId++).toString(36)}` }) : undefined;
    const started = reqLog ? performance.now() : 0;
    // Shaped like a fastify request, so fastify's log serializer writes the same fields.
    reqLog?.info({ req: { method: req.method, url: req.url, headers, host: headers.host, ip: node.clientIps.address(req), socket: req.socket } }, 'incoming request');
    const respond = (status: number, contentType: string, body: string, retryAfter?: string): void => {
      res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body), ...(retryAfter !== undefined ? { 'retry-after': retryAfter } : {}) });
      res.end(body);
      reqLog?.info({ res: { statusCode: status }, responseTime: performance.now() - started }, 'request completed');
    };
    const fail = (err: unknown): void => {
      const e = err instanceof HeraldError ? err : toHeraldError(err as Error);
      if (e.code === ErrorCode.INTERNAL) (reqLog ?? log).error({ err }, 'request failed');
      respond(e.status, 'application/json; charset=utf-8', JSON.stringify({ error: e.toBody() }), retryAfterHeader(e));
    };
    // The API key's rate limit, charged where fastify's onRequest hook charges it: before the body is read.
    const limited = node.rateLimits.apiRequest(key);
    if (limited) {
      fail(rateLimitedError(limited));
      return true;
    }

    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', () => undefined); // an aborted upload: nothing to answer
    req.on('end', () => {
      let body: unknown;
      try {
        body = parseJsonBody(chunks.length === 1 ? chunks[0]!.toString() : Buffer.concat(chunks).toString(), node.config.limits.maxJsonDepth);
      } catch (err) {
        return fail(err);
      }
      if (!validate(body)) return fail(Object.assign(new Error('validation'), { validation: validate.errors ?? [], validationContext: 'body' }));
      // A channel-limited key, checked where fastify's route handler checks it: after validation.
      const refused = grant.publishRefusal(body as PublishRequest);
      if (refused) return fail(refused);
      node.publish(body as PublishRequest).then((result) => respond(200, 'application/json; charset=utf-8', publishResultJson(result)), fail);
    });
    return true;
  };
}

/** Our fastify JSON body parser (json-body.ts): too deep, empty and malformed bodies, `__proto__` and `constructor.prototype` keys refused. */
function parseJsonBody(text: string, maxDepth: number): unknown {
  if (exceedsJsonDepth(text, maxDepth)) throw tooDeepBody(maxDepth);
  if (text === '') throw new HeraldError(ErrorCode.INVALID_JSON, 'the request body is not valid JSON');
  try {
    return secureJson.parse(text, undefined, { protoAction: 'error', constructorAction: 'error' });
  } catch {
    throw new HeraldError(ErrorCode.INVALID_JSON, 'the request body is not valid JSON');
  }
}

/** The media type of a Content-Type header is application/json (parameters ignored), as fastify matches it. */
function isJson(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  const semi = contentType.indexOf(';');
  return (semi < 0 ? contentType : contentType.slice(0, semi)).trim().toLowerCase() === 'application/json';
}

/** The publishResult schema's fields in its order, as fastify's serializer writes them. */
function publishResultJson(r: PublishResult): string {
  let s = `{"msgId":${JSON.stringify(r.msgId)},"timestamp":${Math.trunc(r.timestamp)}`;
  if (r.position) {
    const parts: string[] = [];
    if (r.position.offset !== undefined) parts.push(`"offset":${Math.trunc(r.position.offset)}`);
    if (r.position.epoch !== undefined) parts.push(`"epoch":${JSON.stringify(r.position.epoch)}`);
    s += `,"position":{${parts.join(',')}}`;
  }
  if (r.duplicate !== undefined) s += `,"duplicate":${r.duplicate ? 'true' : 'false'}`;
  return `${s}}`;
}
