/**
 * Peer: a `ws` server that builds each publication's WebSocket frame once (`Sender.frame`) and
 * writes the same bytes to every subscriber's socket, as socket.io does with `wsPreEncodedFrame`.
 * Safe because permessage-deflate is off, so `ws`'s sender writes synchronously and in order.
 *
 *   node packages/bench/dist/peers/ws-preframed.js --port 9002
 */
import { WebSocket } from 'ws';
import { textFrame, type WithSender } from './ws-frame.js';
import { startWsPeer } from './ws-peer.js';

startWsPeer('ws-preframed', (sockets, frame) => {
  const list = textFrame(frame);
  for (const ws of sockets) {
    if (ws.readyState === WebSocket.OPEN) (ws as unknown as WithSender)._sender.sendFrame(list);
  }
});
