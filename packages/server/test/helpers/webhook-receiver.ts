/**
 * A real HTTP receiver for webhook tests (node:http on an ephemeral port): records every request
 * with its raw body and answers as the test says — a status, a hang, a redirect, a huge body.
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedWebhook {
  headers: IncomingHttpHeaders;
  body: string;
  at: number;
  /** The parsed body. */
  event: { id: string; type: string; createdAt: number; node: string; data: Record<string, unknown> };
}

/** What to do with one request: answer a status, or take over the response. */
export type Responder = (req: IncomingMessage, res: ServerResponse, received: ReceivedWebhook) => number | 'handled';

export class WebhookReceiver {
  readonly received: ReceivedWebhook[] = [];
  respond: Responder = () => 200;
  private readonly open = new Set<ServerResponse>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(port = 0): Promise<WebhookReceiver> {
    const box: { receiver?: WebhookReceiver } = {};
    const server = createServer((req, res) => box.receiver!.handle(req, res));
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    box.receiver = new WebhookReceiver(server, (server.address() as AddressInfo).port);
    return box.receiver;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/hook`;
  }

  /** The requests whose body is an event of this type (retries included). */
  ofType(type: string): ReceivedWebhook[] {
    return this.received.filter((r) => r.event.type === type);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const r: ReceivedWebhook = { headers: req.headers, body, at: Date.now(), event: JSON.parse(body) as ReceivedWebhook['event'] };
      this.received.push(r);
      this.open.add(res);
      res.on('close', () => this.open.delete(res));
      const answer = this.respond(req, res, r);
      if (answer !== 'handled') res.writeHead(answer, { 'content-type': 'text/plain' }).end('ok');
    });
  }

  async close(): Promise<void> {
    for (const res of this.open) res.destroy();
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }
}
