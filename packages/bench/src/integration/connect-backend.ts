/**
 * The application backend of the `connect` scenario: a node:http server on loopback that answers
 * Herald's connect hook at once, naming the user from the forwarded `session` cookie — the least
 * a real backend does (its session lookup is the application's cost, not Herald's).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ConnectBackend {
  url: string;
  /** Hook requests answered so far. */
  readonly answered: number;
  /** Requests that were not a well-formed connect hook request. */
  readonly malformed: number;
  close(): Promise<void>;
}

export async function startConnectBackend(): Promise<ConnectBackend> {
  let answered = 0;
  let malformed = 0;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let user: string | undefined;
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { hook?: string; cookies?: Record<string, string> };
        if (body.hook === 'connect') user = body.cookies?.session;
      } catch {
        // answered below as a refusal
      }
      const answer = user
        ? { result: { user, channels: ['bench'] } }
        : { error: { code: 'no_session', message: 'no session cookie', temporary: false } };
      if (user) answered++;
      else malformed++;
      const text = JSON.stringify(answer);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/herald/connect`,
    get answered() {
      return answered;
    },
    get malformed() {
      return malformed;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
