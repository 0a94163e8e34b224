/**
 * The client side of the backend-integration scenarios, run as a child process (its CPU apart
 * from the harness, which plays the application's backend). Driven over IPC (messages.ts):
 *
 * - `open`: opens `count` connections, `concurrency` handshakes in flight, each with a JWT, a
 *   session cookie (for the connect proxy) or both, timing TCP connect → `connected`; holds them
 *   open until told to close.
 * - `ops`: each open connection subscribes to and unsubscribes from a
 *   channel of its own, one frame at a time, flat out or paced — every reply is one lifecycle
 *   event (`subscription.added` / `.removed`) for the webhook outbox.
 *
 * Tokens are signed before `ready`, so a measured window never includes jose.
 */
import WebSocket from 'ws';
import { makeToken } from '../lib/token.js';
import { encodeHistogram, newLatencyHistogram } from '../lib/stats.js';
import type { ConnectorCommand, ConnectorEvent, ConnectSetup, OpsPhase } from './messages.js';

const send = (event: ConnectorEvent): void => {
  process.send?.(event);
};

const errors: string[] = [];
function noteError(text: string): void {
  if (errors.length < 10) errors.push(text);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** One connection and its one outstanding frame. */
class Conn {
  readonly ws: WebSocket;
  private waiting: { type: string; resolve: (ok: boolean) => void } | undefined;
  private nextId = 2;

  constructor(url: string, cookie: string | undefined) {
    this.ws = new WebSocket(url, { perMessageDeflate: false, ...(cookie ? { headers: { cookie } } : {}) });
    this.ws.on('message', (data: Buffer) => this.onMessage(data));
    this.ws.on('error', (err) => {
      noteError(`socket: ${err.message}`);
      this.settle(false);
    });
    this.ws.on('close', (code) => {
      if (this.waiting) noteError(`closed (${code}) while waiting for ${this.waiting.type}`);
      this.settle(false);
    });
  }

  /** Resolves true when a frame of `type` arrives, false on an error frame, close or timeout. */
  expect(type: string, timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        noteError(`no ${type} within ${timeoutMs} ms`);
        this.settle(false);
      }, timeoutMs);
      this.waiting = {
        type,
        resolve: (ok) => {
          clearTimeout(timer);
          resolve(ok);
        },
      };
    });
  }

  frame(body: Record<string, unknown>, reply: string, timeoutMs: number): Promise<boolean> {
    const answered = this.expect(reply, timeoutMs);
    this.ws.send(JSON.stringify({ ...body, id: this.nextId++ }));
    return answered;
  }

  private settle(ok: boolean): void {
    const w = this.waiting;
    this.waiting = undefined;
    w?.resolve(ok);
  }

  private onMessage(data: Buffer): void {
    let frame: { type?: string; error?: { code?: string; message?: string } };
    try {
      frame = JSON.parse(data.toString('utf8')) as typeof frame;
    } catch {
      return;
    }
    if (frame.type === 'ping') {
      this.ws.send('{"type":"pong"}');
      return;
    }
    if (frame.type === 'error') {
      noteError(`error frame: ${frame.error?.code} ${frame.error?.message}`);
      this.settle(false);
      return;
    }
    if (this.waiting && frame.type === this.waiting.type) this.settle(true);
  }
}

const conns: Conn[] = [];
let tokens: Array<string | undefined> = [];

/** Connects connection `i`; resolves with the handshake time in µs, or undefined when it failed. */
async function connectOne(setup: ConnectSetup, i: number): Promise<number | undefined> {
  const t0 = performance.now();
  const conn = new Conn(setup.url, setup.cookie ? `session=user-${i}` : undefined);
  conns[i] = conn;
  const opened = await new Promise<boolean>((resolve) => {
    conn.ws.once('open', () => resolve(true));
    conn.ws.once('error', () => resolve(false));
    conn.ws.once('close', () => resolve(false));
  });
  if (!opened) return undefined;
  const token = tokens[i];
  const ok = await conn.frame({ type: 'connect', client: 'herald-bench', ...(token ? { token } : {}) }, 'connected', setup.timeoutMs);
  return ok ? Math.max(1, Math.round((performance.now() - t0) * 1000)) : undefined;
}

async function openAll(setup: ConnectSetup): Promise<void> {
  const handshakes = newLatencyHistogram();
  let next = 0;
  let connected = 0;
  let failed = 0;
  const t0 = performance.now();
  const lane = async (): Promise<void> => {
    while (next < setup.count) {
      const i = next++;
      const us = await connectOne(setup, i);
      if (us === undefined) failed++;
      else {
        connected++;
        handshakes.recordValue(us);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(setup.concurrency, setup.count)) }, lane));
  const elapsedMs = performance.now() - t0;
  send({ ev: 'opened', connected, failed, elapsedMs, handshakes: encodeHistogram(handshakes), errors: errors.splice(0) });
  handshakes.destroy();
}

/**
 * Subscribe/unsubscribe on every open connection until `maxOps` replies, `durationMs`, or (paced)
 * each connection's share of `rate` ops/s. Channel `wh:<i>` is connection i's alone.
 */
async function runOps(phase: OpsPhase, timeoutMs: number): Promise<void> {
  const live = conns.filter((c) => c !== undefined && c.ws.readyState === WebSocket.OPEN);
  let ops = 0;
  let failed = 0;
  let started = 0;
  const t0 = performance.now();
  const until = t0 + phase.durationMs;
  const gapMs = phase.rate > 0 ? (live.length * 1000) / phase.rate : 0;
  const lane = async (conn: Conn, i: number): Promise<void> => {
    const channel = `wh:${i}`;
    let subscribed = false;
    let due = t0 + (gapMs * i) / Math.max(1, live.length);
    while (started < phase.maxOps && performance.now() < until) {
      if (gapMs > 0) {
        await sleep(Math.max(0, due - performance.now()));
        due += gapMs;
        if (performance.now() >= until) break;
      }
      started++;
      const ok = subscribed
        ? await conn.frame({ type: 'unsubscribe', channel }, 'unsubscribed', timeoutMs)
        : await conn.frame({ type: 'subscribe', channel }, 'subscribed', timeoutMs);
      if (ok) {
        ops++;
        subscribed = !subscribed;
      } else {
        failed++;
        if (conn.ws.readyState !== WebSocket.OPEN) return;
      }
    }
    // Leave it unsubscribed, so the next phase starts from the same state (one more event).
    if (subscribed && conn.ws.readyState === WebSocket.OPEN) {
      if (await conn.frame({ type: 'unsubscribe', channel }, 'unsubscribed', timeoutMs)) ops++;
      else failed++;
    }
  };
  await Promise.all(live.map((c, i) => lane(c, i)));
  send({ ev: 'ops', ops, failed, elapsedMs: performance.now() - t0, errors: errors.splice(0) });
}

let setup: ConnectSetup | undefined;

process.on('message', (raw) => {
  const cmd = raw as ConnectorCommand;
  void (async () => {
    switch (cmd.cmd) {
      case 'setup':
        setup = cmd.setup;
        tokens = [];
        for (let i = 0; i < setup.count; i++) tokens.push(setup.token ? await makeToken(setup.secret, `user-${i}`, ['*']) : undefined);
        send({ ev: 'ready' });
        return;
      case 'open':
        if (setup) await openAll(setup);
        return;
      case 'ops':
        if (setup) await runOps(cmd.phase, setup.timeoutMs);
        return;
      case 'close':
        for (const c of conns) c?.ws.terminate();
        process.exit(0);
    }
  })().catch((error: unknown) => {
    send({ ev: 'failed', error: error instanceof Error ? error.message : String(error) });
  });
});
process.on('disconnect', () => process.exit(0));
