/**
 * The input stream of a run. It starts with a systematic sweep — every frame type × every field ×
 * every mutation class, every WebSocket-layer case, every HTTP route × its fields, every raw
 * upgrade/framing case — interleaved so that even a short run reaches each category early; then
 * it draws random inputs for as long as the run lasts. Inputs depend only on the seed, never on
 * timing: which connection an input lands on is decided when it is sent.
 */
import type { WsSend } from './attacker.js';
import { baseRequest, httpSweep, randomHttpInput, type HttpCredentials, type HttpSpec } from './http-inputs.js';
import { FUZZ_API_KEY, RECOVER_EPOCH } from './world.js';
import { obj, render, type JObj } from './json-model.js';
import { applyValueOp, BAD_UTF8, DEPTHS, EXTRA_KEYS, interestingValues, mutateBytes, mutateValue, sizeTargets, WHOLE_MESSAGES, type ByteOp, type ValueOp } from './mutations.js';
import { rawCatalogue, randomRawInput, type RawInput } from './raw-inputs.js';
import type { Rng } from './rng.js';
import { FIELD_PATHS, fullFrame, validFrame, type FrameContext, type FrameType } from './valid-frames.js';
import { encodeFrame, Opcode, textFrame } from './ws-framer.js';
import { randomWsInput, wsCatalogue } from './ws-inputs.js';

export type Auth = 'anonymous' | 'token' | 'lazy';

export type Input =
  /** On an authenticated connection. */
  | { lane: 'ws'; auth: Auth; send: WsSend; control: boolean }
  /** The first frames of a fresh, unauthenticated connection. */
  | { lane: 'first'; send: WsSend }
  | { lane: 'http'; spec: HttpSpec }
  | { lane: 'raw'; input: RawInput };

export interface GeneratorCredentials extends HttpCredentials {
  /** [label, token] for `connect` frames: valid and broken. */
  connectTokens: Array<[string, string]>;
  validToken: string;
}

/** Frame types sent on authenticated connections, riskiest first (the sweep's order). */
const CONNECTED_TYPES: FrameType[] = ['request', 'publish', 'subscribe', 'response', 'ack', 'unsubscribe', 'refresh', 'ping', 'pong'];

export class InputGenerator {
  private nextId = 1;
  private readonly sweeps: Array<Iterator<Input>>;
  /** Inputs taken from the sweep so far. */
  sweepGenerated = 0;
  /** Every sweep input has been generated (the stream is random from now on). */
  sweepDone = false;
  private turn = 0;
  /** Inputs drawn together with the previous one (the second half of a pair). */
  private readonly queued: Input[] = [];
  private readonly ctx: FrameContext;

  constructor(
    private readonly rng: Rng,
    private readonly limit: number,
    private readonly creds: GeneratorCredentials,
    private readonly host: string,
    /** Only valid frames and requests: a baseline load with the same connections and bystander, no fuzzing. */
    private readonly validOnly = false,
  ) {
    this.ctx = { id: () => this.nextId++ };
    this.sweeps = validOnly ? [] : [this.messageSweep(), this.firstFrameSweep(), this.wsSweep(), this.httpSweepInputs(), this.rawSweep()];
  }

  /** The next input; `fromSweep` tells whether it belongs to the systematic sweep. */
  next(): { input: Input; fromSweep: boolean } {
    const queued = this.queued.shift();
    if (queued) return { input: queued, fromSweep: false };
    if (this.validOnly) {
      this.sweepDone = true;
      return { input: this.randomValid(), fromSweep: false };
    }
    while (this.sweeps.length > 0) {
      const i = this.turn++ % this.sweeps.length;
      const r = this.sweeps[i]!.next();
      if (r.done) {
        this.sweeps.splice(i, 1);
        continue;
      }
      this.sweepGenerated++;
      return { input: r.value, fromSweep: true };
    }
    this.sweepDone = true;
    return { input: this.random(), fromSweep: false };
  }

  private auth(): Auth {
    const r = this.rng.next();
    return r < 0.47 ? 'anonymous' : r < 0.95 ? 'token' : 'lazy';
  }

  // ---- building blocks ------------------------------------------------------------------------

  /** A text message (maybe fragmented) with the expectation its content implies. */
  private message(label: string, payload: Buffer, opts: { awaits?: string; fragments?: number; probe?: boolean; badUtf8?: boolean } = {}): WsSend {
    const n = opts.fragments ?? 1;
    let bytes: Buffer;
    if (n > 1) {
      const size = Math.ceil(payload.length / n);
      const parts: Buffer[] = [];
      for (let i = 0; i < n; i++) parts.push(encodeFrame({ opcode: i === 0 ? Opcode.TEXT : Opcode.CONTINUATION, payload: payload.subarray(i * size, (i + 1) * size), fin: i === n - 1 }));
      bytes = Buffer.concat(parts);
    } else bytes = textFrame(payload);
    const expect = payload.length > this.limit || opts.badUtf8 ? 'close' : 'any';
    return { label: n > 1 ? `${label}+fragments(${n})` : label, bytes, plain: payload, frames: n, expect, ...(opts.awaits ? { awaits: opts.awaits } : {}), probe: opts.probe ?? true };
  }

  private awaitsOf(frame: JObj): string | undefined {
    const id = frame.get('id');
    if (typeof id === 'number') return `id:${id}`;
    const corr = frame.get('correlationId');
    if (frame.get('type') === 'request' && typeof corr === 'string') return `corr:${corr}`;
    return undefined;
  }

  private validMessage(type: FrameType, auth: Auth): Input {
    const f = validFrame(type, this.rng, this.ctx);
    const text = Buffer.from(render(f));
    return { lane: 'ws', auth, control: false, send: this.message(`${type}:valid`, text, { awaits: this.awaitsOf(f) }) };
  }

  private mutated(type: FrameType, op: ValueOp, path: Array<string | number>, choice: number | undefined, auth: Auth): Input {
    const f = fullFrame(type, this.rng, this.ctx);
    const label = applyValueOp(this.rng, f, op, path, this.limit, choice);
    return { lane: 'ws', auth, control: false, send: this.message(`${type}.${label}`, Buffer.from(render(f))) };
  }

  private byteMutated(type: FrameType, op: ByteOp, choice: number | undefined, auth: Auth): Input {
    const f = fullFrame(type, this.rng, this.ctx);
    const m = mutateBytes(this.rng, Buffer.from(render(f)), op, choice);
    return { lane: 'ws', auth, control: false, send: this.message(`${type}.${m.label}`, m.bytes, { badUtf8: op === 'bad-utf8' }) };
  }

  // ---- the sweep ------------------------------------------------------------------------------

  private *messageSweep(): Generator<Input> {
    let n = 0;
    const auth = (): Auth => (n++ % 2 === 0 ? 'token' : 'anonymous');
    const values = interestingValues(this.limit);
    for (const type of CONNECTED_TYPES) {
      yield this.validMessage(type, 'anonymous');
      yield this.validMessage(type, 'token');
      for (const path of FIELD_PATHS[type]) {
        for (let d = 0; d < DEPTHS.length; d++) yield this.mutated(type, 'deep', path, d, auth());
        for (let v = 0; v < values.length; v++) yield this.mutated(type, 'replace', path, v, auth());
        yield this.mutated(type, 'remove', path, undefined, auth());
        for (let s = 0; s < sizeTargets(this.limit).length; s++) yield this.mutated(type, 'size', path, s, auth());
      }
      for (let k = 0; k < EXTRA_KEYS.length; k++) yield this.mutated(type, 'extra-key', [], k, auth());
      yield this.mutated(type, 'duplicate-key', [], undefined, auth());
      for (let b = 0; b < BAD_UTF8.length; b++) yield this.byteMutated(type, 'bad-utf8', b, auth());
      for (const op of ['bom', 'nul', 'truncate'] as const) yield this.byteMutated(type, op, undefined, auth());
    }
    for (const [label, make] of WHOLE_MESSAGES) {
      yield { lane: 'ws', auth: auth(), control: false, send: this.message(`whole:${label}`, Buffer.from(make(this.limit))) };
    }
    // A slow consumer that keeps asking for recovery: the server's replies must stay within its byte budget.
    for (let i = 0; i < 20; i++) yield this.recoverCycle();
  }

  /**
   * subscribe-with-recover from the start of a channel's history, then unsubscribe, on a connection
   * that reads slowly: each reply can be as large as the history. The attacker puts in the
   * channel's real epoch (RECOVER_EPOCH is a placeholder) so that recovery succeeds.
   */
  private recoverCycle(): Input {
    const channel = this.rng.pick(['fuzz:a', 'fuzz:b', 'tok:x']);
    const sub = obj({ type: 'subscribe', id: this.ctx.id(), channel, recover: obj({ offset: 0, epoch: RECOVER_EPOCH }) });
    const unsub = obj({ type: 'unsubscribe', id: this.ctx.id(), channel });
    const frames = [Buffer.from(render(sub)), Buffer.from(render(unsub))];
    return {
      lane: 'ws',
      auth: 'lazy',
      control: false,
      send: { label: `recover-cycle(${channel})`, bytes: Buffer.concat(frames.map((f) => textFrame(f))), plain: Buffer.concat(frames), frames: 2, expect: 'any', probe: false },
    };
  }

  private first(label: string, frames: string[]): Input {
    const payloads = frames.map((t) => Buffer.from(t));
    const bytes = Buffer.concat(payloads.map((p) => textFrame(p)));
    const expect = payloads.some((p) => p.length > this.limit) ? 'close' : 'any';
    return { lane: 'first', send: { label: `first:${label}`, bytes, plain: Buffer.concat(payloads).subarray(0, 4096), frames: frames.length, expect } };
  }

  private connectText(token: string | undefined): string {
    return render(validFrame('connect', this.rng, { ...this.ctx, token }));
  }

  private *firstFrameSweep(): Generator<Input> {
    const values = interestingValues(this.limit);
    yield this.first('connect:anonymous', [this.connectText(undefined)]);
    yield this.first('connect:token', [this.connectText(this.creds.validToken)]);
    for (const [label, token] of this.creds.connectTokens) yield this.first(`connect:token(${label})`, [this.connectText(token)]);
    for (const path of FIELD_PATHS.connect) {
      const build = (op: ValueOp, choice?: number): Input => {
        const f = fullFrame('connect', this.rng, { ...this.ctx, token: this.creds.validToken });
        return this.first(`connect.${applyValueOp(this.rng, f, op, path, this.limit, choice)}`, [render(f)]);
      };
      for (let d = 0; d < DEPTHS.length; d++) yield build('deep', d);
      for (let v = 0; v < values.length; v++) yield build('replace', v);
      yield build('remove');
      for (let s = 0; s < sizeTargets(this.limit).length; s++) yield build('size', s);
    }
    for (let k = 0; k < EXTRA_KEYS.length; k++) {
      const f = fullFrame('connect', this.rng, this.ctx);
      yield this.first(`connect.${applyValueOp(this.rng, f, 'extra-key', [], this.limit, k)}`, [render(f)]);
    }
    for (const type of CONNECTED_TYPES) yield this.first(`not-connect-first(${type})`, [render(validFrame(type, this.rng, this.ctx))]);
    const pipelined = (n: number, make: () => string) => [this.connectText(undefined), ...Array.from({ length: n }, make)];
    yield this.first('pipelined(10 valid)', pipelined(10, () => render(validFrame(this.rng.pick(CONNECTED_TYPES), this.rng, this.ctx))));
    yield this.first('pipelined(64 pings)', pipelined(64, () => '{"type":"ping"}'));
    yield this.first('pipelined(65 pings)', pipelined(65, () => '{"type":"ping"}'));
    yield this.first('pipelined(deep request 6000)', pipelined(1, () => `{"type":"request","correlationId":"p","method":"echo","data":${'['.repeat(6000)}${']'.repeat(6000)}}`));
    yield this.first('pipelined(second connect)', pipelined(1, () => this.connectText(this.creds.validToken)));
  }

  private *wsSweep(): Generator<Input> {
    let n = 0;
    for (const send of wsCatalogue(this.rng, this.limit)) {
      yield { lane: 'ws', auth: n++ % 2 === 0 ? 'anonymous' : 'token', control: true, send: { ...send, probe: send.expect === 'open' || send.expect === 'any' } };
    }
  }

  private *httpSweepInputs(): Generator<Input> {
    for (const spec of httpSweep(this.rng, this.limit, this.creds)) yield { lane: 'http', spec };
  }

  private *rawSweep(): Generator<Input> {
    for (const input of rawCatalogue(this.host, { valid: this.creds.validToken, bad: this.creds.badTokens }, this.rng)) yield { lane: 'raw', input };
  }

  // ---- random ---------------------------------------------------------------------------------

  private random(): Input {
    const lane = this.rng.weighted<'message' | 'control' | 'first' | 'http' | 'raw'>([
      ['message', 64],
      ['control', 11],
      ['first', 3],
      ['http', 20],
      ['raw', 2],
    ]);
    switch (lane) {
      case 'message':
        return this.randomMessage();
      case 'control': {
        const send = randomWsInput(this.rng, this.limit);
        return { lane: 'ws', auth: this.auth(), control: true, send: { ...send, probe: send.expect === 'open' || send.expect === 'any' } };
      }
      case 'first':
        return this.randomFirst();
      case 'http': {
        const [first, ...rest] = randomHttpInput(this.rng, this.limit, this.creds);
        for (const spec of rest) this.queued.push({ lane: 'http', spec });
        return { lane: 'http', spec: first! };
      }
      case 'raw':
        return { lane: 'raw', input: randomRawInput(this.rng, this.host, { valid: this.creds.validToken, bad: this.creds.badTokens }) };
    }
  }

  private randomValid(): Input {
    if (this.rng.chance(0.8)) return this.validMessage(this.randomType(), this.auth());
    const { spec } = baseRequest(this.rng, 'publish', this.creds, this.limit);
    spec.path = '/api/v1/publish';
    spec.headers = { 'content-type': 'application/json', authorization: `Bearer ${FUZZ_API_KEY}` };
    spec.label = `http:publish valid [${spec.framing}]`;
    return { lane: 'http', spec };
  }

  private randomType(): FrameType {
    return this.rng.weighted<FrameType>([
      ['publish', 3],
      ['subscribe', 3],
      ['unsubscribe', 2],
      ['request', 3],
      ['response', 1],
      ['ack', 1],
      ['refresh', 1],
      ['ping', 1],
      ['pong', 1],
    ]);
  }

  private randomMessage(): Input {
    const rng = this.rng;
    const auth = this.auth();
    if (auth === 'lazy' && rng.chance(0.5)) return this.recoverCycle();
    const type = this.randomType();
    if (rng.chance(0.2)) return this.validMessage(type, auth);
    if (rng.chance(0.03)) {
      const [label, make] = rng.pick(WHOLE_MESSAGES);
      return { lane: 'ws', auth, control: false, send: this.message(`whole:${label}`, Buffer.from(make(this.limit)), { probe: rng.chance(0.25) }) };
    }
    const f = validFrame(type, rng, this.ctx);
    const labels: string[] = [];
    for (let i = rng.range(1, 3); i > 0; i--) labels.push(mutateValue(rng, f, this.limit));
    let bytes: Buffer = Buffer.from(render(f));
    let badUtf8 = false;
    if (rng.chance(0.12)) {
      const m = mutateBytes(rng, bytes);
      bytes = m.bytes;
      labels.push(m.label);
      badUtf8 = m.label.startsWith('bytes:bad-utf8');
    }
    const fragments = rng.chance(0.08) ? rng.range(2, 5) : 1;
    return { lane: 'ws', auth, control: false, send: this.message(`${type}.${labels.join(' ')}`, bytes, { fragments, badUtf8, probe: rng.chance(0.25) }) };
  }

  private randomFirst(): Input {
    const rng = this.rng;
    const [tokenLabel, token] = rng.chance(0.3) ? ['anonymous', undefined] : rng.chance(0.5) ? ['valid', this.creds.validToken] : rng.pick(this.creds.connectTokens);
    const f = validFrame('connect', rng, { ...this.ctx, token });
    let label = `connect(${tokenLabel})`;
    if (rng.chance(0.5)) label += ` ${mutateValue(rng, f, this.limit)}`;
    const frames = [render(f)];
    const behind = rng.chance(0.5) ? rng.int(rng.chance(0.1) ? 70 : 8) : 0;
    for (let i = 0; i < behind; i++) {
      const g = validFrame(this.randomType(), rng, this.ctx);
      if (rng.chance(0.3)) mutateValue(rng, g, this.limit);
      frames.push(render(g));
    }
    return this.first(`${label}${behind ? ` +${behind} pipelined` : ''}`, frames);
  }
}
