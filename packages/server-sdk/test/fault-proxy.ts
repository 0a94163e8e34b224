/**
 * A real HTTP server in the test process that stands between the SDK and a real Herald and
 * fails requests on cue: each request takes the next fault from `plan`, and with none left it is
 * forwarded unchanged. Every request body is recorded, so a test can see what each try carried.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type Fault =
  /** Answer with this status, headers and body (JSON-encoded unless a string); Herald never sees it. */
  | { status: number; body?: unknown; headers?: Record<string, string> }
  /** Forward to Herald, then cut the connection instead of passing its answer back. */
  | 'forward-then-drop'
  /** Never answer. */
  | 'hang';

export interface Recorded {
  method: string;
  path: string;
  body: any;
}

export interface FaultProxy {
  url: string;
  plan: Fault[];
  requests: Recorded[];
  close(): Promise<void>;
}

export async function startFaultProxy(target: string | null): Promise<FaultProxy> {
  const plan: Fault[] = [];
  const requests: Recorded[] = [];
  const server: Server = createServer((req, res) => void handle(req, res));

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    let body: unknown = raw;
    try {
      body = raw === '' ? undefined : JSON.parse(raw);
    } catch {
      /* kept as text */
    }
    requests.push({ method: req.method ?? '', path: req.url ?? '', body });
    const fault = plan.shift();
    if (fault === 'hang') return;
    if (fault !== undefined && fault !== 'forward-then-drop') {
      const text = typeof fault.body === 'string' ? fault.body : JSON.stringify(fault.body ?? {});
      res.writeHead(fault.status, { 'content-type': typeof fault.body === 'string' ? 'text/html' : 'application/json', ...fault.headers });
      res.end(text);
      return;
    }
    if (target === null) throw new Error('fault proxy has no target to forward to');
    const upstream = await fetch(target + (req.url ?? ''), {
      method: req.method ?? 'GET',
      headers: Object.fromEntries(['authorization', 'content-type'].flatMap((h) => (req.headers[h] ? [[h, String(req.headers[h])]] : []))),
      ...(raw !== '' ? { body: raw } : {}),
    });
    const answer = await upstream.text();
    if (fault === 'forward-then-drop') {
      res.socket?.destroy();
      return;
    }
    const headers: Record<string, string> = { 'content-type': upstream.headers.get('content-type') ?? 'application/json' };
    const retryAfter = upstream.headers.get('retry-after');
    if (retryAfter !== null) headers['retry-after'] = retryAfter;
    res.writeHead(upstream.status, headers);
    res.end(answer);
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    plan,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
