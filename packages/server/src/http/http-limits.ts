/**
 * Protection of the HTTP server itself, below fastify: how long a client may take to send a
 * request (`server.http.*`), how many TCP connections it may hold open, and the answer a client
 * gets when it breaks those rules — Herald's error body, like every other refusal.
 */
import type { Server, ServerOptions } from 'node:http';
import type { Duplex } from 'node:stream';
import { ErrorCode } from '@herald/protocol';
import type { HeraldConfig } from '../config.js';
import { ERRORS } from '../errors.js';

/** Room for HTTP API and polling connections beside the WebSocket caps in the default connection cap. */
const HTTP_HEADROOM = 1024;

/** Node's server options for the configured deadlines. */
export function httpServerOptions(config: Readonly<HeraldConfig>): ServerOptions {
  const { requestTimeoutMs, headersTimeoutMs, keepAliveTimeoutMs } = config.server.http;
  return {
    requestTimeout: requestTimeoutMs,
    // Node refuses a headers deadline longer than the whole-request one.
    headersTimeout: Math.min(headersTimeoutMs, requestTimeoutMs),
    keepAliveTimeout: keepAliveTimeoutMs,
    // Node checks both deadlines on this interval (30 s by default, which would let a slow
    // request run far past a 10 s deadline); a tenth of the shorter deadline keeps the overrun
    // small, and the check only walks requests still in progress.
    connectionsCheckingInterval: Math.max(50, Math.floor(Math.min(headersTimeoutMs, requestTimeoutMs) / 10)),
  };
}

/** `server.http.maxConnections`, with 0 meaning the WebSocket caps plus headroom for HTTP clients. */
export function maxTcpConnections(config: Readonly<HeraldConfig>): number {
  const { maxConnections, maxPendingConnections } = config.limits;
  return config.server.http.maxConnections > 0 ? config.server.http.maxConnections : maxConnections + maxPendingConnections + HTTP_HEADROOM;
}

/** Applies the connection cap; upgraded WebSockets stay counted until they close. */
export function applyConnectionCap(server: Server, config: Readonly<HeraldConfig>): void {
  server.maxConnections = maxTcpConnections(config);
}

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  408: 'Request Timeout',
  429: 'Too Many Requests',
  503: 'Service Unavailable',
};

/**
 * A complete HTTP/1.1 error response with Herald's error body, for sockets that are answered
 * outside fastify (refused upgrades, client errors, deadlines). The connection is closed after it.
 */
export function rawErrorResponse(code: ErrorCode, message?: string, headers: Record<string, string | number> = {}, details?: unknown): string {
  const spec = ERRORS[code];
  const body = JSON.stringify({ error: { code, message: message ?? spec.message, temporary: spec.temporary, ...(details !== undefined ? { details } : {}) } });
  let head = `HTTP/1.1 ${spec.status} ${REASONS[spec.status] ?? 'Error'}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n`;
  for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`;
  return `${head}\r\n${body}`;
}

/**
 * Answers a socket that Node's HTTP parser still owns (a request it gave up on) and destroys it
 * at once, as Node does, so nothing more is parsed from it. A response already under way on the
 * connection is not interrupted by a second one.
 */
export function refuseRequest(socket: Duplex, code: ErrorCode, message?: string): void {
  const inFlight = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (socket.writable && !inFlight?.headersSent) socket.write(rawErrorResponse(code, message));
  socket.destroy();
}

/**
 * fastify's `clientErrorHandler`: Node reports a request it could not take (too slow, malformed,
 * headers too large). A deadline is `408 client_timeout`; anything else `400 bad_request`.
 */
export function clientErrorHandler(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    refuseRequest(socket, ErrorCode.CLIENT_TIMEOUT, 'the request did not arrive in time (server.http.headersTimeoutMs, requestTimeoutMs)');
    return;
  }
  refuseRequest(socket, ErrorCode.BAD_REQUEST, err.code === 'HPE_HEADER_OVERFLOW' ? 'the request headers are too large' : 'malformed HTTP request');
}
