/**
 * Peer: the floor under any Node push server here. A `ws` server that builds each publication's
 * frame once and hands it to the kernel through Herald's own `send(2)` addon (packages/server/native/herald-send),
 * 32 sockets per call, with no protocol work at all: no envelope, no history, no per-connection
 * queue. Whatever Herald spends per delivery above this peer is Herald's own overhead; whatever
 * this peer spends is the kernel's price of one send on this machine (plus a loop). A socket with
 * something already pending, or whatever the kernel did not take, goes through `ws` as usual.
 *
 *   node packages/bench/dist/peers/ws-native.js --port 9004
 */
import type { Socket } from 'node:net';
import { WebSocket } from 'ws';
import { finishSend, plainTcpFd, sendMany } from 'herald/internal/transport/direct-send.js';
import { textFrame, type WithSender } from './ws-frame.js';
import { startWsPeer } from './ws-peer.js';

type WsInternals = WithSender & { _socket: Socket };

const CHUNK = 32;

if (!sendMany) {
  console.error('ws-native: the send(2) addon is not built (npm run build builds native/herald-send); this peer measures nothing without it');
  process.exit(1);
}
const send = sendMany;
const fds = new Int32Array(CHUNK);
const results = new Int32Array(CHUNK);
const held: Socket[] = [];

startWsPeer('ws-native', (sockets, text) => {
  const list = textFrame(text);
  const frame = list.length === 1 ? list[0]! : Buffer.concat(list);
  let count = 0;
  const flush = (): void => {
    send(fds, count, frame, results);
    for (let i = 0; i < count; i++) finishSend(held[i]!, frame, results[i]!);
    count = 0;
  };
  for (const ws of sockets) {
    if (ws.readyState !== WebSocket.OPEN) continue;
    const internals = ws as unknown as WsInternals;
    const socket = internals._socket;
    const fd = socket.writableLength === 0 ? plainTcpFd(socket) : -1;
    if (fd < 0) {
      internals._sender.sendFrame(list);
      continue;
    }
    fds[count] = fd;
    held[count++] = socket;
    if (count === CHUNK) flush();
  }
  if (count > 0) flush();
  held.length = 0;
});
