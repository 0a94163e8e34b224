/**
 * A real application backend for the proxy hook tests: node:http on an ephemeral loopback port,
 * one handler per hook path (`/connect`, `/subscribe`, …). A handler returns the JSON answer, a
 * raw reply (`{status, body}`), or `'hang'` to never answer. Every request body is recorded.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type BackendReply = unknown | { raw: { status: number; body: string } } | 'hang';
export type BackendHandler = (body: any) => BackendReply | Promise<BackendReply>;

export class TestBackend {
  readonly requests: Array<{ path: string; body: any }> = [];
  readonly handlers = new Map<string, BackendHandler>();
  /** Requests received and not answered yet. */
  open = 0;
  private readonly hanging = new Set<ServerResponse>();
  private constructor(private readonly server: Server, readonly url: string) {}

  static async start(): Promise<TestBackend> {
    const holder: { backend?: TestBackend } = {};
    const server = createServer((req, res) => void holder.backend!.serve(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    holder.backend = new TestBackend(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    return holder.backend;
  }

  on(hook: string, handler: BackendHandler): this {
    this.handlers.set(`/${hook}`, handler);
    return this;
  }

  requestsTo(hook: string): any[] {
    return this.requests.filter((r) => r.path === `/${hook}`).map((r) => r.body);
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const path = (req.url ?? '').split('?')[0]!;
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null');
    this.requests.push({ path, body });
    const handler = this.handlers.get(path);
    if (!handler) {
      res.writeHead(404).end();
      return;
    }
    this.open++;
    const reply = await handler(body);
    if (reply === 'hang') {
      this.hanging.add(res);
      res.on('close', () => {
        this.hanging.delete(res);
        this.open--;
      });
      return;
    }
    this.open--;
    if (reply && typeof reply === 'object' && 'raw' in reply) {
      const raw = (reply as { raw: { status: number; body: string } }).raw;
      res.writeHead(raw.status, { 'content-type': 'application/json' }).end(raw.body);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(reply));
  }

  /** Answers nothing more: every hanging request is dropped. */
  async close(): Promise<void> {
    for (const res of this.hanging) res.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
