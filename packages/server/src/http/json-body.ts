/**
 * JSON request bodies for every fastify route (`/api/v1`, `/poll/v1`): fastify's own parser
 * (empty and malformed bodies, `__proto__` and `constructor.prototype` keys refused), behind the
 * `limits.maxJsonDepth` check, which runs on the text before anything parses it. The publish fast
 * path applies the same check with the same error (`tooDeepBody`), so both answer alike.
 */
import type { FastifyInstance } from 'fastify';
import { ErrorCode } from '@herald/protocol';
import { HeraldError } from '../errors.js';
import { exceedsJsonDepth } from '../json-depth.js';

export function tooDeepBody(maxDepth: number): HeraldError {
  return new HeraldError(ErrorCode.BAD_REQUEST, `the request body nests objects and arrays deeper than limits.maxJsonDepth (${maxDepth})`);
}

/** Replaces the `application/json` parser; call on the root instance before routes are registered. */
export function installJsonBodyParser(app: FastifyInstance, maxDepth: number): void {
  const parse = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    if (exceedsJsonDepth(body as string, maxDepth)) {
      done(tooDeepBody(maxDepth), undefined);
      return;
    }
    parse(req, body as string, done);
  });
}
