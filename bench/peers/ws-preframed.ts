/**
 * Peer: a `ws` server that builds each publication's WebSocket frame once (`Sender.frame`) and
 * writes the same bytes to every subscriber's socket, as socket.io does with `wsPreEncodedFrame`.
 * Safe because permessage-deflate is off, so `ws`'s sender writes synchronously and in order.
 *
 *   node dist/bench/peers/ws-preframed.js --port 9002
 */
import * as wsModule from 'ws';
import { WebSocket } from 'ws';
import { startWsPeer } from './ws-peer.js';

interface FrameOptions {
  fin: boolean;
  rsv1: boolean;
  opcode: number;
  mask: boolean;
  readOnly: boolean;
}
// `Sender` is exported by `ws` but absent from @types/ws.
const { Sender } = wsModule as unknown as { Sender: { frame(data: Buffer, options: FrameOptions): Buffer[] } };
type WithSender = { _sender: { sendFrame(list: Buffer[]): void } };

const TEXT: FrameOptions = { fin: true, rsv1: false, opcode: 1, mask: false, readOnly: false };

startWsPeer('ws-preframed', (sockets, frame) => {
  const list = Sender.frame(Buffer.from(frame, 'utf8'), TEXT);
  for (const ws of sockets) {
    if (ws.readyState === WebSocket.OPEN) (ws as unknown as WithSender)._sender.sendFrame(list);
  }
});
