/**
 * What the comparison peers share: command-line options, the envelope, the HTTP publish endpoint
 * (`POST /api/v1/publish`, same body and API-key header as Herald) and token checks. A peer is a
 * deliberately small server: it does what Herald does on the benchmark's path and nothing more.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { parseArgs } from 'node:util';
import { jwtVerify } from 'jose';

export interface PeerOptions {
  host: string;
  port: number;
  secret: string;
  apiKey: string;
}

export function peerOptions(argv = process.argv.slice(2)): PeerOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: 'string', default: '0' },
      host: { type: 'string', default: '127.0.0.1' },
      secret: { type: 'string', default: 'bench-secret-0123456789abcdef-0123456789' },
      'api-key': { type: 'string', default: 'bench-key' },
    },
  });
  return { host: values.host, port: Number(values.port), secret: values.secret, apiKey: values['api-key'] };
}

export interface Envelope {
  msgId: string;
  timestamp: number;
  source: string;
  eventType: string;
  version: string;
  payload: unknown;
}

export interface Publication {
  /** Both undefined means every connection. */
  channel: string | undefined;
  /** Every connection whose token's `sub` is this user. */
  user?: string | undefined;
  message: Envelope;
}

/** The delivery frame of wire protocol v1 for a channel, user or broadcast publication. */
export function deliveryFrame(p: Publication): { type: 'message'; target: 'channel' | 'user' | 'broadcast'; channel?: string; message: Envelope } {
  if (p.user !== undefined) return { type: 'message', target: 'user', message: p.message };
  return p.channel === undefined
    ? { type: 'message', target: 'broadcast', message: p.message }
    : { type: 'message', target: 'channel', channel: p.channel, message: p.message };
}

export type Broadcast = (p: Publication) => void;

function reply(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function badRequest(res: ServerResponse, message: string): void {
  reply(res, 400, { error: { code: 'bad_request', message, temporary: false } });
}

/** Checks one publish request and fills its envelope; a string is the reason it is refused. */
function publication(body: unknown): Publication | string {
  if (typeof body !== 'object' || body === null) return 'body must be an object';
  const b = body as Record<string, unknown>;
  const { channel, user, eventType } = b;
  if (typeof eventType !== 'string' || !('payload' in b)) return 'eventType and payload are required';
  if (channel !== undefined && typeof channel !== 'string') return 'channel must be a string';
  if (user !== undefined && (typeof user !== 'string' || channel !== undefined)) return 'user must be a string, and not given with channel';
  const message: Envelope = {
    msgId: typeof b.msgId === 'string' ? b.msgId : randomUUID(),
    timestamp: Date.now(),
    source: typeof b.source === 'string' ? b.source : 'api',
    eventType,
    version: typeof b.version === 'string' ? b.version : '1.0',
    payload: b.payload,
  };
  return { channel, user, message };
}

/**
 * Parses a publish body, fills the envelope, broadcasts it, answers `{msgId}`. The batch route
 * (`{messages: [...]}` → `{results: [{msgId} | {error}]}`, as Herald) broadcasts each message in
 * order, as N publishes would.
 */
function handlePublish(req: IncomingMessage, res: ServerResponse, options: PeerOptions, broadcast: Broadcast, batch: boolean): void {
  if (req.headers.authorization !== `Bearer ${options.apiKey}`) {
    reply(res, 401, { error: { code: 'invalid_api_key', message: 'bad API key', temporary: false } });
    return;
  }
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    let body: unknown;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      badRequest(res, 'body is not JSON');
      return;
    }
    if (!batch) {
      const p = publication(body);
      if (typeof p === 'string') return badRequest(res, p);
      broadcast(p);
      reply(res, 200, { msgId: p.message.msgId });
      return;
    }
    const messages = (body as { messages?: unknown } | null)?.messages;
    if (!Array.isArray(messages) || messages.length === 0 || messages.length > 1000) return badRequest(res, 'messages must be an array of 1 to 1000 publish requests');
    const results = messages.map((m) => {
      const p = publication(m);
      if (typeof p === 'string') return { error: { code: 'bad_request', message: p, temporary: false } };
      broadcast(p);
      return { msgId: p.message.msgId, timestamp: p.message.timestamp };
    });
    reply(res, 200, { results });
  });
}

/** An HTTP server answering the publish endpoint; other paths get 404 (WebSocket upgrades are the caller's). */
export function publishServer(options: PeerOptions, broadcast: Broadcast): Server {
  return createServer({ keepAlive: true }, (req, res) => {
    if (req.method === 'POST' && req.url === '/api/v1/publish') handlePublish(req, res, options, broadcast, false);
    else if (req.method === 'POST' && req.url === '/api/v1/publish/batch') handlePublish(req, res, options, broadcast, true);
    else reply(res, 404, { error: { code: 'not_found', message: 'not found', temporary: false } });
  });
}

/** The token's `sub`, or an Error when the token is missing or invalid. */
export async function verifyToken(token: unknown, secret: string): Promise<string | Error> {
  if (typeof token !== 'string') return new Error('token required');
  try {
    const { payload } = await jwtVerify(token, new TextEncoder().encode(secret), { algorithms: ['HS256'] });
    return typeof payload.sub === 'string' ? payload.sub : '';
  } catch (error) {
    return error instanceof Error ? error : new Error(String(error));
  }
}

/** Listens, prints the ready line the harness waits for, and exits cleanly on SIGTERM/SIGINT. */
export function listen(server: Server, options: PeerOptions, peer: string, close: () => void = () => {}): void {
  server.listen(options.port, options.host, () => {
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : options.port;
    process.stdout.write(`${JSON.stringify({ level: 'info', msg: 'listening', peer, host: options.host, port, pid: process.pid })}\n`);
  });
  const stop = (): void => {
    close();
    server.close();
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 200).unref();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
