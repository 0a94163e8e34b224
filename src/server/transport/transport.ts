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
  readonly remoteAddress: string;
}
