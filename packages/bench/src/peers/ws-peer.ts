/**
 * The `ws` peers' shared server: the subset of Herald's protocol v1 the benchmark uses (connect
 * with a JWT, subscribe, unsubscribe, ping/pong, user-targeted publishes) over a plain `ws`
 * WebSocketServer. How a
 * publication reaches the sockets is the one thing the peers differ in: `fanOut`.
 */
import { randomUUID } from 'node:crypto';
import { WebSocketServer, WebSocket } from 'ws';
import { deliveryFrame, listen, peerOptions, publishServer, verifyToken, type Publication } from './common.js';

/** Sends one publication's delivery frame to every socket in `sockets`. */
export type FanOut = (sockets: Iterable<WebSocket>, frame: string) => void;

const PING_INTERVAL_MS = 25_000;
const PONG_TIMEOUT_MS = 10_000;

export function startWsPeer(name: string, fanOut: FanOut): void {
  const options = peerOptions();
  const channels = new Map<string, Set<WebSocket>>();
  /** A user's sockets, for user-targeted publishes. */
  const users = new Map<string, Set<WebSocket>>();
  const ready = new Set<WebSocket>();

  const broadcast = (p: Publication): void => {
    const sockets = p.user !== undefined ? users.get(p.user) : p.channel === undefined ? ready : channels.get(p.channel);
    if (!sockets || sockets.size === 0) return;
    fanOut(sockets, JSON.stringify(deliveryFrame(p)));
  };

  const server = publishServer(options, broadcast);
  const wss = new WebSocketServer({ server, perMessageDeflate: false, maxPayload: 64 * 1024, clientTracking: false });

  wss.on('connection', (ws) => {
    let state: 'new' | 'authenticating' | 'ready' = 'new';
    let userId: string | undefined;
    const subscriptions = new Set<string>();
    const error = (id: unknown, code: string, message: string): void => {
      ws.send(JSON.stringify({ type: 'error', ...(typeof id === 'number' ? { id } : {}), error: { code, message, temporary: false } }));
    };

    ws.on('message', (data, isBinary) => {
      if (isBinary) return ws.close(1003, 'text frames only');
      let frame: Record<string, unknown>;
      try {
        frame = JSON.parse(String(data)) as Record<string, unknown>;
      } catch {
        return error(undefined, 'invalid_json', 'frame is not JSON');
      }
      const { id } = frame;
      switch (frame.type) {
        case 'connect': {
          if (state !== 'new') return ws.close(4504, 'already connected');
          state = 'authenticating';
          void verifyToken(frame.token, options.secret).then((user) => {
            if (user instanceof Error) return ws.close(4501, 'unauthorized');
            if (ws.readyState !== WebSocket.OPEN) return;
            state = 'ready';
            ready.add(ws);
            userId = user;
            let mine = users.get(user);
            if (!mine) users.set(user, (mine = new Set()));
            mine.add(ws);
            const connected = { type: 'connected', id, connectionId: randomUUID(), user, pingInterval: PING_INTERVAL_MS, pongTimeout: PONG_TIMEOUT_MS, protocol: 1, node: name };
            ws.send(JSON.stringify(connected));
          });
          return;
        }
        case 'subscribe':
        case 'unsubscribe': {
          if (state !== 'ready') return error(id, 'not_connected', 'send connect first');
          const channel = frame.channel;
          if (typeof channel !== 'string' || channel.length === 0) return error(id, 'invalid_channel', 'bad channel');
          if (frame.type === 'subscribe') {
            let set = channels.get(channel);
            if (!set) channels.set(channel, (set = new Set()));
            set.add(ws);
            subscriptions.add(channel);
            ws.send(JSON.stringify({ type: 'subscribed', id, channel, position: { offset: 0, epoch: '' } }));
          } else {
            channels.get(channel)?.delete(ws);
            subscriptions.delete(channel);
            ws.send(JSON.stringify({ type: 'unsubscribed', id, channel }));
          }
          return;
        }
        case 'ping':
          return ws.send('{"type":"pong"}');
        case 'pong':
          return;
        default:
          return error(id, 'unknown_frame_type', `unknown frame type ${String(frame.type)}`);
      }
    });

    ws.on('close', () => {
      ready.delete(ws);
      if (userId !== undefined) {
        const mine = users.get(userId);
        mine?.delete(ws);
        if (mine?.size === 0) users.delete(userId);
      }
      for (const channel of subscriptions) {
        const set = channels.get(channel);
        set?.delete(ws);
        if (set?.size === 0) channels.delete(channel);
      }
    });
    ws.on('error', () => ws.terminate());
  });

  listen(server, options, name, () => wss.close());
}
