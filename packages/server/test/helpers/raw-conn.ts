/** A raw TCP client for tests that must control every byte (slow requests, unsent bodies). */
import { connect, type Socket } from 'node:net';
import { WebSocket } from 'ws';

export class RawConn {
  readonly socket: Socket;
  readonly openedAt = Date.now();
  text = '';
  closedAt: number | undefined;
  readonly connected: Promise<void>;
  readonly closed: Promise<void>;
  private waiters: Array<() => void> = [];

  constructor(port: number, opts: { host?: string; localAddress?: string } = {}) {
    this.socket = connect({ port, host: opts.host ?? '127.0.0.1', ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) });
    this.socket.on('data', (d) => {
      this.text += d.toString('latin1');
      this.wake();
    });
    this.socket.on('error', () => undefined);
    this.connected = new Promise((resolve) => this.socket.once('connect', () => resolve()));
    this.closed = new Promise((resolve) =>
      this.socket.once('close', () => {
        this.closedAt = Date.now();
        this.wake();
        resolve();
      }),
    );
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  write(data: string): void {
    if (!this.socket.destroyed) this.socket.write(data, 'latin1');
  }

  /** Writes `data` one byte every `intervalMs` until done or the socket closes; returns a stopper. */
  dribble(data: string, intervalMs: number): () => void {
    let i = 0;
    const timer = setInterval(() => {
      if (i >= data.length || this.socket.destroyed) return clearInterval(timer);
      this.write(data[i++]!);
    }, intervalMs);
    return () => clearInterval(timer);
  }

  /** Waits until the received text satisfies `pred` (or the socket closes, or the time is up). */
  async waitFor(pred: (text: string) => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!pred(this.text)) {
      const left = deadline - Date.now();
      if (left <= 0 || this.closedAt !== undefined) return pred(this.text);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return true;
  }

  /** Waits for the socket to close; true if it did within the time. */
  async waitClosed(timeoutMs: number): Promise<boolean> {
    await this.waitFor(() => false, timeoutMs);
    return this.closedAt !== undefined;
  }

  /** The status code and JSON body of the first HTTP response received, if complete. */
  response(): { status: number; body: any } | undefined {
    const m = /^HTTP\/1\.1 (\d{3}) [^\r]*\r\n([\s\S]*?)\r\n\r\n/.exec(this.text);
    if (!m) return undefined;
    const length = /content-length: *(\d+)/i.exec(m[2]!);
    const start = m[0].length;
    const raw = length ? this.text.slice(start, start + Number(length[1])) : this.text.slice(start);
    try {
      return { status: Number(m[1]), body: JSON.parse(raw) };
    } catch {
      return { status: Number(m[1]), body: raw };
    }
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Opens a WebSocket that the server refuses; resolves with the HTTP status and JSON body, or rejects if it opened. */
export function refusedUpgrade(url: string, opts: { headers?: Record<string, string>; localAddress?: string } = {}): Promise<{ status: number; body: any; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers: opts.headers ?? {}, ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) });
    ws.once('open', () => {
      ws.close();
      reject(new Error('the upgrade was accepted'));
    });
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => {
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          /* not JSON */
        }
        resolve({ status: res.statusCode ?? 0, body, headers: res.headers });
      });
    });
  });
}
