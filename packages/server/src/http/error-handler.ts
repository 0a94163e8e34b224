/**
 * One error body for every HTTP failure: `{"error": {"code", "message", "temporary", "details"}}`
 * with a stable code from the registry. Stack traces never leave the process.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ErrorCode } from '@herald/protocol';
import { HeraldError } from '../errors.js';
import { retryAfterHeader } from '../rate-limit/rate-limits.js';

export function toHeraldError(err: FastifyError | Error): HeraldError {
  if (err instanceof HeraldError) return err;
  const fe = err as FastifyError;
  if (fe.validation) {
    const details = fe.validation.map((v) => ({
      field: (v.instancePath || '').replace(/^\//, '').replace(/\//g, '.') || undefined,
      problem: v.params && 'additionalProperty' in v.params ? `unknown field "${String(v.params.additionalProperty)}"` : v.message,
    }));
    const first = details[0];
    const message = `invalid request ${fe.validationContext ?? 'body'}: ${first?.field ? `${first.field} ` : ''}${first?.problem ?? 'does not match the schema'}`;
    return new HeraldError(ErrorCode.BAD_REQUEST, message, details);
  }
  switch (fe.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new HeraldError(ErrorCode.UNSUPPORTED_MEDIA_TYPE);
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new HeraldError(ErrorCode.MESSAGE_TOO_LARGE, 'the request body is larger than the limit');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new HeraldError(ErrorCode.INVALID_JSON, 'the request body is not valid JSON');
  }
  if (err instanceof SyntaxError || (fe.statusCode === 400 && /JSON/i.test(fe.message))) {
    return new HeraldError(ErrorCode.INVALID_JSON, 'the request body is not valid JSON');
  }
  if (fe.statusCode && fe.statusCode >= 400 && fe.statusCode < 500) return new HeraldError(ErrorCode.BAD_REQUEST, fe.message);
  return new HeraldError(ErrorCode.INTERNAL);
}

/**
 * fastify's `frameworkErrors`: what its router refuses before any route runs (a path that is not
 * valid percent-encoding, a path parameter past `maxParamLength`) gets Herald's error body too,
 * not fastify's own shape.
 */
export function frameworkErrors(err: FastifyError, _req: FastifyRequest, reply: FastifyReply): void {
  const e =
    err.code === 'FST_ERR_MAX_PARAM_LENGTH'
      ? new HeraldError(ErrorCode.BAD_REQUEST, 'a path parameter is longer than the API allows')
      : err.code === 'FST_ERR_BAD_URL'
        ? new HeraldError(ErrorCode.BAD_REQUEST, 'the request path is not valid percent-encoded UTF-8')
        : toHeraldError(err);
  void reply.code(e.status).header('content-type', 'application/json').send({ error: e.toBody() });
}

export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, req, reply) => {
    const e = toHeraldError(err);
    if (e.code === ErrorCode.INTERNAL) req.log.error({ err }, 'request failed');
    else req.log.debug({ code: e.code }, 'request refused');
    const retryAfter = retryAfterHeader(e);
    if (retryAfter !== undefined) void reply.header('retry-after', retryAfter);
    void reply.code(e.status).header('content-type', 'application/json').send({ error: e.toBody() });
  });
  app.setNotFoundHandler((req, reply) => {
    const e = new HeraldError(ErrorCode.NOT_FOUND, `no route ${req.method} ${req.url.split('?')[0]}`);
    void reply.code(404).send({ error: e.toBody() });
  });
}
