/**
 * Frames a text payload once so the same bytes can go to many sockets (RFC 6455 §5.2). Server
 * frames are never masked, so one buffer is valid for every connection. `ws` does not export a
 * typed framer for this, and the header is a few bytes of arithmetic.
 */

export function encodeTextFrame(text: string): Buffer {
  const length = Buffer.byteLength(text);
  const header = length < 126 ? 2 : length < 65536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(header + length);
  frame[0] = 0x81; // FIN + text opcode
  if (header === 2) {
    frame[1] = length;
  } else if (header === 4) {
    frame[1] = 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 127;
    frame.writeUInt32BE(Math.floor(length / 2 ** 32), 2);
    frame.writeUInt32BE(length >>> 0, 6);
  }
  frame.write(text, header, 'utf8');
  return frame;
}

/**
 * A pong answering a control ping (payload at most 125 bytes, as RFC 6455 allows for control
 * frames and `ws` enforces on what it parses). Written through the session like any other frame,
 * so answering a ping flood counts against the connection's byte budget.
 */
export function encodePongFrame(payload: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(2 + payload.length);
  frame[0] = 0x8a; // FIN + pong opcode
  frame[1] = payload.length;
  payload.copy(frame, 2);
  return frame;
}

/** One frame of a buffer of unmasked server frames: its opcode and payload. */
export interface WireFrame {
  opcode: number;
  payload: Buffer;
}

/**
 * Splits a buffer holding whole, unmasked frames (what `encodeTextFrame` and `encodePongFrame`
 * produce, alone or concatenated) back into opcodes and payloads, for a transport that must hand
 * them to `ws.send`/`ws.pong` instead of writing the bytes itself.
 */
export function splitFrames(bytes: Buffer): WireFrame[] {
  const frames: WireFrame[] = [];
  let at = 0;
  while (at < bytes.length) {
    const short = bytes[at + 1]! & 0x7f;
    let header = 2;
    let length = short;
    if (short === 126) {
      header = 4;
      length = bytes.readUInt16BE(at + 2);
    } else if (short === 127) {
      header = 10;
      length = bytes.readUInt32BE(at + 2) * 2 ** 32 + bytes.readUInt32BE(at + 6);
    }
    frames.push({ opcode: bytes[at]! & 0x0f, payload: bytes.subarray(at + header, at + header + length) });
    at += header + length;
  }
  return frames;
}
