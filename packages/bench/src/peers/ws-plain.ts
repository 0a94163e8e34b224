/**
 * Peer: a plain `ws` server that serialises each publication once and calls `ws.send(text)` per
 * subscriber, so `ws` converts and frames the text again for every socket.
 *
 *   node packages/bench/dist/peers/ws-plain.js --port 9001
 */
import { WebSocket } from 'ws';
import { startWsPeer } from './ws-peer.js';

startWsPeer('ws-plain', (sockets, frame) => {
  for (const ws of sockets) if (ws.readyState === WebSocket.OPEN) ws.send(frame);
});
