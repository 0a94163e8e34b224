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
      secret: { type: 'string', default: 'bench-secret-0123456789' },
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
  /** Undefined means every connection. */
  channel: string | undefined;
  message: Envelope;
}

/** The delivery frame of wire protocol v1 for a channel (or broadcast) publication. */
export function deliveryFrame(p: Publication): { type: 'message'; target: 'channel' | 'broadcast'; channel?: string; message: Envelope } {
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

/** Parses and checks a publish body, fills the envelope, broadcasts it, answers `{msgId}`. */
function handlePublish(req: IncomingMessage, res: ServerResponse, options: PeerOptions, broadcast: Broadcast): void {
  if (req.headers.authorization !== `Bearer ${options.apiKey}`) {
    reply(res, 401, { error: { code: 'invalid_api_key', message: 'bad API key', temporary: false } });
    return;
  }
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
    } catch {
      badRequest(res, 'body is not JSON');
      return;
    }
    if (typeof body !== 'object' || body === null) return badRequest(res, 'body must be an object');
    const { channel, eventType } = body;
    if (typeof eventType !== 'string' || !('payload' in body)) return badRequest(res, 'eventType and payload are required');
    if (channel !== undefined && typeof channel !== 'string') return badRequest(res, 'channel must be a string');
    const message: Envelope = {
      msgId: typeof body.msgId === 'string' ? body.msgId : randomUUID(),
      timestamp: Date.now(),
      source: typeof body.source === 'string' ? body.source : 'api',
      eventType,
      version: typeof body.version === 'string' ? body.version : '1.0',
      payload: body.payload,
    };
    broadcast({ channel, message });
    reply(res, 200, { msgId: message.msgId });
  });
}

/** An HTTP server answering the publish endpoint; other paths get 404 (WebSocket upgrades are the caller's). */
export function publishServer(options: PeerOptions, broadcast: Broadcast): Server {
  return createServer({ keepAlive: true }, (req, res) => {
    if (req.method === 'POST' && req.url === '/api/v1/publish') handlePublish(req, res, options, broadcast);
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
