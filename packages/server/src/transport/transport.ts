/**
 * What a session needs from a connection: write already-encoded bytes, know how much is still
 * buffered, close with a code. Reading stays with the gateway that owns the socket.
 */
export interface Transport {
  /** Writes complete wire frames, in order, as one write where possible. */
  write(frames: readonly Buffer[]): void;
  /** Bytes accepted by `write` but not yet handed to the kernel. */
  readonly bufferedAmount: number;
  /** Starts a close handshake with this code; the socket is destroyed if it does not finish in time. */
  close(code: number, reason: string): void;
  /** Destroys the connection at once. */
  terminate(): void;
  /**
   * The socket's descriptor when a frame may be sent to it directly right now (a plain TCP socket
   * with nothing pending), else -1. Optional: transports without it always take `write`.
   */
  directFd?(): number;
  /** After a direct send took `written` bytes of `frame` (negative: −errno), writes the rest normally. */
  finishDirect?(frame: Buffer, written: number): void;
  readonly remoteAddress: string;
}
