/**
 * One attacking connection: a raw TCP socket with a hand-made WebSocket upgrade, so it can send
 * what a WebSocket library never would. It authenticates as its kind says (anonymous, with a
 * token, or not at all for first-frame inputs), answers the server's pings and requests like a
 * sloppy client would (sometimes with mutated responses), and checks that the server keeps
 * answering: after inputs that should leave the connection open it sends a `ping` probe that
 * must get a `pong`; valid frames must get their reply; inputs that break the WebSocket protocol
 * must get the connection closed.
 */
import { connect, type Socket } from 'node:net';
import { render } from './json-model.js';
import { mutateValue } from './mutations.js';
import { preview, Ring, type ConnKind, type InputRecord } from './recorder.js';
import type { Rng } from './rng.js';
import type { RunState } from './run-state.js';
import { validFrame } from './valid-frames.js';
import { closePayload, encodeFrame, FrameReader, Opcode, textFrame, upgradeRequest } from './ws-framer.js';
import type { WsExpect } from './ws-inputs.js';
import { RECOVER_EPOCH } from './world.js';

/** Bytes to send on an open connection and what the server should do with them. */
export interface WsSend {
  label: string;
  bytes: Buffer;
  expect: WsExpect;
  split?: boolean;
  endAfter?: boolean;
  /** A valid frame: the reply that must come back (`id:<n>`, `corr:<id>`). */
  awaits?: string;
  /** Send a `ping` probe after it (the server must still answer). */
  probe?: boolean;
  /** The unmasked payload, for the report's preview. */
  plain?: Buffer;
  /** WebSocket frames in `bytes` (default 1). */
  frames?: number;
}

const PING = textFrame('{"type":"ping"}');
const RECOVER_EPOCH_JSON = JSON.stringify(RECOVER_EPOCH);
const RECOVER_EPOCH_BYTES = Buffer.from(RECOVER_EPOCH_JSON);
const PONG = '{"type":"pong"}';
const MAX_BUFFERED = 512 * 1024;
const CLOSE_GRACE_MS = 5000;
const HANDSHAKE_TIMEOUT_MS = 10_000;

let counter = 0;

export class Attacker {
  readonly name = `c${++counter}`;
  readonly recent = new Ring<InputRecord>(16);
  state: 'upgrading' | 'open' | 'connected' | 'closed' = 'upgrading';
  connectionId: string | undefined;
  /** A split write is in progress. */
  busy = false;
  /** An input should have made the server close this connection. */
  condemned = false;
  /** Not reading (a slow consumer); lazy connections do this now and then. */
  paused = false;
  /** Checks in progress that need the connection left alone. */
  private held = 0;
  readonly serverRequests: string[] = [];
  readonly received: string[] = [];
  /** The upgrade's HTTP status when it was refused. */
  refusedStatus: string | undefined;
  readonly ready: Promise<boolean>;
  readonly closed: Promise<void>;

  private readonly socket: Socket;
  private readonly reader = new FrameReader();
  private head = Buffer.alloc(0);
  private probes: number[] = [];
  /** Probes answered so far. */
  private answers = 0;
  private readonly awaiting = new Map<string, { at: number; label: string }>();
  private answered: (() => void) | undefined;
  private gotCloseFrame = false;
  /** We ended the TCP connection ourselves (so no close frame is due). */
  private weClosed = false;
  private nextAutoId = 1_000_000_000;
  private setReady!: (ok: boolean) => void;
  private setClosed!: () => void;

  constructor(
    private readonly run: RunState,
    readonly kind: ConnKind,
    private readonly rng: Rng,
    private readonly token?: string,
    readonly user?: string,
  ) {
    this.ready = new Promise((r) => (this.setReady = r));
    this.closed = new Promise((r) => (this.setClosed = r));
    run.counts.connectionsOpened++;
    const socket = connect({ host: run.host, port: run.port });
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('connect', () => socket.write(upgradeRequest(`${run.host}:${run.port}`)));
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => this.onSocketClose());
    const timer = setTimeout(() => {
      if (this.state === 'closed' || this.isAuthenticatedOrOpen()) return;
      this.run.anomaly('no-answer', `${this.kind} connection not ${this.kind === 'preconnect' ? 'upgraded' : 'connected'} within ${HANDSHAKE_TIMEOUT_MS} ms`, this);
      this.destroy();
    }, HANDSHAKE_TIMEOUT_MS);
    void this.ready.then(() => clearTimeout(timer));
  }

  private isAuthenticatedOrOpen(): boolean {
    return this.kind === 'preconnect' ? this.state === 'open' : this.state === 'connected';
  }

  /** Can take an input now. */
  isReady(): boolean {
    return this.isAuthenticatedOrOpen() && !this.busy && !this.condemned && this.held === 0 && this.socket.writableLength < MAX_BUFFERED && !this.run.serverGone;
  }

  // ---- inbound --------------------------------------------------------------------------------

  private onData(chunk: Buffer): void {
    if (this.state === 'upgrading') {
      this.head = Buffer.concat([this.head, chunk]);
      const end = this.head.indexOf('\r\n\r\n');
      if (end < 0) return;
      const status = /^HTTP\/1\.1 (\d{3})/.exec(this.head.subarray(0, end).toString('latin1'))?.[1] ?? 'bad-status-line';
      const rest = this.head.subarray(end + 4);
      this.head = Buffer.alloc(0);
      if (status !== '101') {
        this.refusedStatus = status;
        this.run.upgrades.inc(`attacker ${status}`);
        this.destroy();
        return;
      }
      this.state = 'open';
      if (this.kind === 'preconnect') this.setReady(true);
      else this.writeSetupConnect();
      if (rest.length === 0) return;
      chunk = rest;
    }
    for (const frame of this.reader.push(chunk)) this.onFrame(frame.opcode, frame.payload);
    if (this.reader.violation) {
      this.run.anomaly('server-bad-frame', this.reader.violation, this);
      this.destroy();
    }
  }

  private writeSetupConnect(): void {
    const text = JSON.stringify({ type: 'connect', id: 0, ...(this.token ? { token: this.token } : {}), client: 'herald-fuzz' });
    this.recent.push({ seq: 0, atMs: this.run.elapsed(), label: 'setup:connect', target: 'ws', conn: this.name, connKind: this.kind, preview: preview(text) });
    this.write(textFrame(text));
  }

  private onFrame(opcode: number, payload: Buffer): void {
    switch (opcode) {
      case Opcode.TEXT:
        this.answered?.();
        this.onText(payload);
        return;
      case Opcode.CLOSE: {
        this.answered?.();
        this.gotCloseFrame = true;
        const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
        this.run.closes.inc(code);
        if (code === 1011 || code === 4004) this.run.anomaly('internal-error', `closed with ${code} (${payload.subarray(2).toString()})`, this);
        this.write(encodeFrame({ opcode: Opcode.CLOSE, payload: closePayload(code === 1005 ? 1000 : code) }));
        this.socket.end();
        this.state = 'closed';
        return;
      }
      case Opcode.PING:
      case Opcode.PONG:
        return;
      default:
        this.run.anomaly('server-bad-frame', `server sent opcode ${opcode}`, this);
    }
  }

  private onText(payload: Buffer): void {
    let frame: Record<string, any>;
    try {
      frame = JSON.parse(payload.toString('utf8')) as Record<string, any>;
    } catch {
      this.run.anomaly('server-bad-frame', `server sent text that is not JSON: ${preview(payload)}`, this);
      return;
    }
    if (typeof frame.id === 'number') this.awaiting.delete(`id:${frame.id}`);
    if (typeof frame.channel === 'string') {
      const epoch = frame.position?.epoch ?? frame.epoch;
      if (typeof epoch === 'string') this.run.epochs.set(frame.channel, epoch);
    }
    switch (frame.type) {
      case 'connected':
        if (frame.id === 0 && this.state === 'open') {
          this.state = 'connected';
          this.connectionId = String(frame.connectionId);
          this.setReady(true);
        }
        return;
      case 'error': {
        const code = String(frame.error?.code);
        this.run.errors.inc(code);
        if (code === 'internal') this.run.anomaly('internal-error', `error frame: ${JSON.stringify(frame).slice(0, 300)}`, this);
        if (code === 'rate_limited' && frame.id === undefined) this.probeAnswered();
        if (frame.id === 0 && this.state === 'open') {
          // The setup `connect` was refused: give the slot back (the pool reopens it).
          this.setReady(false);
          this.close();
        }
        return;
      }
      case 'pong':
        this.probeAnswered();
        return;
      case 'ping':
        this.write(textFrame(PONG));
        return;
      case 'response':
        this.awaiting.delete(`corr:${frame.correlationId}`);
        if (frame.error) {
          this.run.errors.inc(`rpc:${frame.error.code}`);
          if (frame.error.code === 'internal') this.run.anomaly('internal-error', `response: ${JSON.stringify(frame).slice(0, 300)}`, this);
        }
        return;
      case 'request':
        this.onServerRequest(String(frame.correlationId));
        return;
      case 'message':
        if (typeof frame.message?.msgId === 'string') {
          this.received.push(frame.message.msgId);
          if (this.received.length > 50) this.received.shift();
          if (frame.ack && this.rng.chance(0.8)) this.autoSend('auto:ack', JSON.stringify({ type: 'ack', msgIds: [frame.message.msgId] }));
        }
        return;
      default:
        return;
    }
  }

  /** A server → client request (from a fuzzed HTTP call): answer it well, badly, or not at all. */
  private onServerRequest(correlationId: string): void {
    this.serverRequests.push(correlationId);
    if (this.serverRequests.length > 20) this.serverRequests.shift();
    const roll = this.rng.next();
    if (roll < 0.6) this.autoSend('auto:response', JSON.stringify({ type: 'response', correlationId, data: { ok: true } }));
    else if (roll < 0.7) this.autoSend('auto:response-error', JSON.stringify({ type: 'response', correlationId, error: { code: 'unavailable', message: 'no' } }));
    else if (roll < 0.9) {
      const f = validFrame('response', this.rng, { id: () => this.nextAutoId++, serverRequests: [correlationId] });
      const label = mutateValue(this.rng, f, this.run.limit);
      this.autoSend(`auto:response ${label}`, render(f));
    }
  }

  private autoSend(label: string, text: string): void {
    if (!this.isAuthenticatedOrOpen() || this.condemned) return;
    this.run.counts.autoReplies++;
    this.run.counts.wsFrames++;
    const bytes = textFrame(text);
    this.run.record({ label, target: 'ws', conn: this.name, connKind: this.kind, ...(this.user ? { user: this.user } : {}), bytes: bytes.toString('base64'), preview: preview(text) }, this.recent);
    this.write(bytes);
  }

  private onSocketClose(): void {
    if (!this.gotCloseFrame && !this.weClosed && this.state !== 'upgrading' && this.refusedStatus === undefined) {
      this.run.closes.inc('no-close-frame');
      const last = this.recent.last(1)[0]?.label ?? 'nothing';
      this.run.dropped.inc(last.replace(/[ (].*$/, ''));
    }
    this.state = 'closed';
    this.probes = [];
    this.awaiting.clear();
    this.answered?.();
    this.setReady(false);
    this.setClosed();
  }

  // ---- outbound -------------------------------------------------------------------------------

  private write(bytes: Buffer): void {
    if (this.socket.destroyed || this.socket.writableEnded) return;
    this.run.counts.wsBytes += bytes.length;
    this.socket.write(bytes);
  }

  /** Sends one input, logging it first. */
  send(input: WsSend): void {
    input = this.withRealEpochs(input);
    this.run.counts.wsFrames += input.frames ?? 1;
    this.run.record(
      { label: input.label, target: 'ws', conn: this.name, connKind: this.kind, ...(this.user ? { user: this.user } : {}), bytes: input.bytes.toString('base64'), preview: input.plain ? preview(input.plain) : `hex ${input.bytes.subarray(0, 64).toString('hex')}${input.bytes.length > 64 ? `… (${input.bytes.length} bytes)` : ''}` },
      this.recent,
    );
    if (input.awaits) this.awaiting.set(input.awaits, { at: Date.now(), label: input.label });
    if (input.endAfter || input.expect === 'close') this.condemned = true;
    const after = (): void => {
      if (input.endAfter) {
        this.weClosed = true;
        this.socket.end();
      } else if (input.expect === 'close') this.expectClose(input.label);
      else if (input.probe) this.probe();
    };
    if (input.split) this.writeSplit(input.bytes, after);
    else {
      this.write(input.bytes);
      after();
    }
  }

  /** Replaces RECOVER_EPOCH with the epoch any connection has seen for the channel. */
  private withRealEpochs(input: WsSend): WsSend {
    if (!input.plain || !input.plain.includes(RECOVER_EPOCH_BYTES)) return input;
    const texts = input.plain.toString('utf8').split(/(?<=\})(?=\{"type")/);
    if (texts.length !== (input.frames ?? 1)) return input;
    const fixed = texts.map((t) => {
      const channel = /"channel":"([^"]*)"/.exec(t)?.[1];
      const epoch = channel !== undefined ? this.run.epochs.get(channel) : undefined;
      return epoch ? t.replace(RECOVER_EPOCH_JSON, JSON.stringify(epoch)) : t;
    });
    const plain = Buffer.from(fixed.join(''));
    return { ...input, plain, bytes: Buffer.concat(fixed.map((t) => textFrame(t))) };
  }

  /** Writes in small pieces (bigger ones for big inputs), a timer turn apart, then calls `done`. */
  private writeSplit(bytes: Buffer, done: () => void): void {
    this.busy = true;
    const maxPiece = Math.max(7, Math.ceil(bytes.length / 64));
    let at = 0;
    const step = (): void => {
      if (this.state === 'closed') {
        this.busy = false;
        return;
      }
      const n = 1 + this.rng.int(maxPiece);
      this.write(bytes.subarray(at, at + n));
      at += n;
      if (at < bytes.length) setTimeout(step, 1);
      else {
        this.busy = false;
        done();
      }
    };
    step();
  }

  private expectClose(label: string): void {
    // A connection that is not reading cannot see its close: stop the pause short.
    if (this.paused) this.resume();
    setTimeout(() => {
      if (this.state === 'closed' || this.run.serverGone) return;
      this.run.anomaly('expected-close', `${label}: the connection is still open ${CLOSE_GRACE_MS} ms later`, this);
      this.weClosed = true;
      this.destroy();
    }, CLOSE_GRACE_MS).unref();
  }

  private probeAnswered(): void {
    this.answers++;
    this.probes.shift();
  }

  /** A `ping` the server must answer with `pong` while the connection is open. */
  probe(): void {
    if (this.state !== 'connected' || this.paused) return;
    this.probes.push(Date.now());
    this.write(PING);
  }

  /** Flags probes and valid frames left unanswered for longer than `timeoutMs`. */
  checkTimeouts(now: number, timeoutMs: number): void {
    if (this.state !== 'connected' || this.paused || this.condemned || this.run.serverGone) return;
    if (this.probes.length > 0 && now - this.probes[0]! > timeoutMs) {
      this.run.anomaly('no-answer', `ping probe unanswered for ${now - this.probes[0]!} ms`, this);
      this.probes = [];
    }
    for (const [key, { at, label }] of this.awaiting) {
      if (now - at <= timeoutMs) continue;
      this.run.anomaly('no-answer', `no reply to ${label} (${key}) for ${now - at} ms`, this);
      this.awaiting.delete(key);
    }
  }

  /** Takes no new inputs until `release` or a check ends (an HTTP call about this connection is in flight). */
  hold(): void {
    this.held++;
  }

  release(): void {
    this.held = Math.max(0, this.held - 1);
  }

  /** A check about this connection is in progress. */
  isHeld(): boolean {
    return this.held > 0;
  }

  /**
   * After `POST /connections/{id}/disconnect`: a success must close the connection within the
   * grace period; a failure must leave it working (a probe answered), not half-closed.
   */
  checkAfterDisconnect(succeeded: boolean, label: string, timeoutMs: number, cause: InputRecord): void {
    this.recent.push(cause);
    if (this.state === 'closed' || this.run.serverGone) return;
    this.resume();
    if (succeeded) {
      this.condemned = true;
      this.expectClose(label);
      return;
    }
    this.held++;
    const answersDue = this.answers + this.probes.length + 1;
    this.probe();
    const deadline = Date.now() + timeoutMs;
    const check = setInterval(() => {
      const answered = this.answers >= answersDue;
      if (!answered && this.state !== 'closed' && !this.run.serverGone && Date.now() < deadline) return;
      clearInterval(check);
      this.held--;
      if (answered || this.state === 'closed' || this.run.serverGone) return;
      this.run.anomaly('no-answer', `${label}: afterwards the connection stays open but answers nothing for ${timeoutMs} ms`, this);
      this.weClosed = true;
      this.destroy();
    }, 50);
    check.unref();
  }

  /** Stops reading for `ms` (the server's queue for this connection then grows), then resumes. */
  pauseFor(ms: number): void {
    if (this.paused || this.state !== 'connected' || this.held > 0) return;
    this.paused = true;
    this.socket.pause();
    const pause = (this.pauseId = (this.pauseId ?? 0) + 1);
    setTimeout(() => {
      if (this.pauseId === pause) this.resume();
    }, ms).unref();
  }

  private pauseId: number | undefined;

  private resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.probes = [];
    for (const entry of this.awaiting.values()) entry.at = Date.now();
    this.socket.resume();
  }

  /** Resolves when the server answers anything (a text or close frame) or the socket closes; false after `ms`. */
  waitAnswer(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      if (this.state === 'closed') return resolve(true);
      const timer = setTimeout(() => {
        this.answered = undefined;
        resolve(false);
      }, ms);
      this.answered = () => {
        clearTimeout(timer);
        this.answered = undefined;
        resolve(true);
      };
    });
  }

  /** A normal close from our side. */
  close(): void {
    if (this.state === 'closed') return;
    this.weClosed = true;
    this.write(encodeFrame({ opcode: Opcode.CLOSE, payload: closePayload(1000) }));
    this.socket.end();
    setTimeout(() => this.destroy(), 1000).unref();
  }

  destroy(): void {
    this.weClosed = true;
    this.socket.destroy();
  }
}
