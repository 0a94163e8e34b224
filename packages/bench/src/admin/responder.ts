/**
 * A client that answers the server's requests (`POST /api/v1/connections/{id}/request`): the
 * loadgen's connections never answer one, so the admin scenario connects one of these to the node
 * it wants the request to reach. It answers every `request` frame at once with its `data`.
 */
import WebSocket from 'ws';
import { makeToken } from '../lib/token.js';

export interface Responder {
  connectionId: string;
  node: string;
  /** Requests answered so far. */
  readonly answered: number;
  close(): void;
}

export async function connectResponder(url: string, secret: string, user: string, timeoutMs = 10_000): Promise<Responder> {
  const token = await makeToken(secret, user);
  const ws = new WebSocket(url);
  let answered = 0;
  return new Promise<Responder>((resolve, reject) => {
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`responder on ${url}: no "connected" within ${timeoutMs} ms`));
    }, timeoutMs);
    ws.on('open', () => ws.send(JSON.stringify({ type: 'connect', id: 1, token, client: 'herald-bench-responder' })));
    ws.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    ws.on('close', (code) => {
      clearTimeout(timer);
      reject(new Error(`responder on ${url} closed with ${code} before "connected"`));
    });
    ws.on('message', (data) => {
      const frame = JSON.parse(String(data)) as { type?: string; correlationId?: string; data?: unknown; connectionId?: string; node?: string; error?: { code?: string } };
      if (frame.type === 'request') {
        answered++;
        ws.send(JSON.stringify({ type: 'response', correlationId: frame.correlationId, data: frame.data ?? null }));
      } else if (frame.type === 'ping') {
        ws.send('{"type":"pong"}');
      } else if (frame.type === 'connected') {
        clearTimeout(timer);
        resolve({
          connectionId: String(frame.connectionId),
          node: String(frame.node),
          get answered() {
            return answered;
          },
          close: () => ws.terminate(),
        });
      } else if (frame.type === 'error') {
        clearTimeout(timer);
        reject(new Error(`responder on ${url}: error frame ${frame.error?.code}`));
      }
    });
  });
}
