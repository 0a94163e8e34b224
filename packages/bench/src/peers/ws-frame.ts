/**
 * One publication's WebSocket text frame, built once by `ws`'s own framer (`Sender.frame`) for the
 * peers that write the same bytes to every socket. Safe because permessage-deflate is off.
 */
import * as wsModule from 'ws';

interface FrameOptions {
  fin: boolean;
  rsv1: boolean;
  opcode: number;
  mask: boolean;
  readOnly: boolean;
}
// `Sender` is exported by `ws` but absent from @types/ws.
const { Sender } = wsModule as unknown as { Sender: { frame(data: Buffer, options: FrameOptions): Buffer[] } };

const TEXT: FrameOptions = { fin: true, rsv1: false, opcode: 1, mask: false, readOnly: false };

/** The frame as `ws` builds it: header and payload, possibly as two buffers. */
export function textFrame(text: string): Buffer[] {
  return Sender.frame(Buffer.from(text, 'utf8'), TEXT);
}

/** What a `ws` socket's sender takes to write a pre-built frame. */
export type WithSender = { _sender: { sendFrame(list: Buffer[]): void } };
