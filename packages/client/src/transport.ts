/**
 * The part of the WebSocket API the client uses. The browser's native `WebSocket` and the `ws`
 * package's `WebSocket` both fit it.
 */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  /** `ws` only: destroy the socket at once, without a closing handshake. */
  terminate?(): void;
  onopen: ((event: any) => void) | null;
  onmessage: ((event: any) => void) | null;
  onclose: ((event: any) => void) | null;
  onerror: ((event: any) => void) | null;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** `WebSocket.OPEN` in both implementations. */
export const OPEN = 1;

/** The global WebSocket of a browser (or of Node 22+), if there is one. */
export function globalWebSocket(): WebSocketConstructor | undefined {
  const ctor = (globalThis as { WebSocket?: unknown }).WebSocket;
  return typeof ctor === 'function' ? (ctor as WebSocketConstructor) : undefined;
}
