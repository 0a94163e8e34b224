/** The IPC messages between the harness and the integration connector (connector.ts). */

export interface ConnectSetup {
  url: string;
  count: number;
  /** Handshakes in flight at once. */
  concurrency: number;
  /** Connection i sends a JWT for `user-<i>` in its connect frame. */
  token: boolean;
  /** Connection i's upgrade request carries `Cookie: session=user-<i>` (for the connect proxy). */
  cookie: boolean;
  secret: string;
  /** Per handshake and per frame. */
  timeoutMs: number;
}

export interface OpsPhase {
  /** Subscribe/unsubscribe replies at most (each is one lifecycle event). */
  maxOps: number;
  durationMs: number;
  /** Ops/s over all connections; 0 = flat out, one frame in flight per connection. */
  rate: number;
}

export type ConnectorCommand =
  | { cmd: 'setup'; setup: ConnectSetup }
  | { cmd: 'open' }
  | { cmd: 'ops'; phase: OpsPhase }
  | { cmd: 'close' };

export type ConnectorEvent =
  | { ev: 'ready' }
  | { ev: 'opened'; connected: number; failed: number; elapsedMs: number; handshakes: string; errors: string[] }
  | { ev: 'ops'; ops: number; failed: number; elapsedMs: number; errors: string[] }
  | { ev: 'failed'; error: string };
