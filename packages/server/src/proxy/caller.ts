/**
 * The one way Herald asks an application backend: a JSON POST with a deadline, counted against a
 * bounded number in flight, its answer read up to a size cap and validated against the hook's
 * schema (api/proxy.schema.json). The contract, for every hook:
 *
 * - `call` never hangs past `timeoutMs` per attempt and never queues: past `maxInFlight` (node) or
 *   `maxInFlightPerConnection` it fails at once with `backend_unavailable` (temporary);
 * - backend down, timeout, 5xx → `backend_unavailable`; 4xx, not JSON, too large, not matching
 *   the schema → `backend_error`. Both temporary: nothing was decided;
 * - a refusal (`{error}`) becomes a HeraldError with the backend's code, message and temporary;
 * - `{disconnect}` is returned as such; the hook decides how to end the connection;
 * - an idempotent hook is tried once more when the backend could not be reached at all (the
 *   request never arrived); anything else is never retried here;
 * - with `proxy.signing.secrets`, every attempt carries its own `Herald-Signature` over
 *   `<t>.proxy.<body>` (../signature.ts), so a retry is as fresh as a first try.
 */
import { readFileSync } from 'node:fs';
import { exceedsJsonDepth } from '../json-depth.js';
import { AnswerTooLarge, readCappedText } from '../read-capped.js';
import { Ajv, type ValidateFunction } from 'ajv';
import { ErrorCode } from '@herald/protocol';
import { HeraldError } from '../errors.js';
import { PROXY_DOMAIN, SIGNATURE_HEADER, signatureHeader, type SigningSecret } from '../signature.js';

export type HookName = 'connect' | 'subscribe' | 'publish' | 'rpc' | 'refresh';

export interface HookTarget {
  url: string;
  timeoutMs: number;
}

export interface CallerLimits {
  maxInFlight: number;
  maxInFlightPerConnection: number;
  maxResponseBytes: number;
  /** `limits.maxJsonDepth`: an answer nested deeper is refused before it is parsed. */
  maxJsonDepth: number;
}

export type CallOutcome = 'result' | 'refused' | 'disconnect' | 'unavailable' | 'invalid' | 'overflow';

/** Told of every call: its outcome and how long it took (`overflow`: refused at once by an in-flight bound). */
export type CallObserver = (hook: HookName, outcome: CallOutcome, seconds: number) => void;

export type HookAnswer<R> = { kind: 'result'; result: R } | { kind: 'disconnect'; code: number; reason: string };

/** Who a call is charged to: the connection's own in-flight count. */
export interface CallOwner {
  readonly id: string;
}

const IDEMPOTENT: Record<HookName, boolean> = { connect: true, subscribe: true, refresh: true, publish: false, rpc: false };

let schemaText: string | undefined;
function proxySchema(): Record<string, unknown> {
  // The same relative path from src/proxy/ and dist/proxy/.
  schemaText ??= readFileSync(new URL('../../api/proxy.schema.json', import.meta.url), 'utf8');
  return JSON.parse(schemaText) as Record<string, unknown>;
}

export class ProxyCaller {
  private inFlight = 0;
  private readonly perOwner = new Map<string, number>();
  private readonly validators = new Map<HookName, ValidateFunction>();

  constructor(
    private readonly limits: CallerLimits,
    private readonly observe: CallObserver = () => {},
    /** `proxy.signing.secrets`; none: requests go unsigned. */
    private readonly secrets: readonly SigningSecret[] = [],
  ) {
    const ajv = new Ajv({ allErrors: false, strict: false });
    ajv.addSchema(proxySchema());
    for (const hook of Object.keys(IDEMPOTENT) as HookName[]) this.validators.set(hook, ajv.getSchema(`herald:proxy#/$defs/${hook}Answer`)!);
  }

  /** Hook requests waiting on backends now (for metrics and tests). */
  get pending(): number {
    return this.inFlight;
  }

  async call<R>(hook: HookName, target: HookTarget, body: unknown, owner?: CallOwner): Promise<HookAnswer<R>> {
    const { maxInFlight, maxInFlightPerConnection } = this.limits;
    const mine = owner ? (this.perOwner.get(owner.id) ?? 0) : 0;
    if (this.inFlight >= maxInFlight || (owner && mine >= maxInFlightPerConnection)) {
      this.observe(hook, 'overflow', 0);
      if (this.inFlight >= maxInFlight) throw unavailable(hook, `${maxInFlight} hook requests already waiting (proxy.maxInFlight)`);
      throw unavailable(hook, `this connection already has ${mine} hook requests waiting (proxy.maxInFlightPerConnection)`);
    }
    this.inFlight++;
    if (owner) this.perOwner.set(owner.id, mine + 1);
    const start = performance.now();
    let outcome: CallOutcome = 'result';
    try {
      const answer = await this.attempt<R>(hook, target, JSON.stringify(body), IDEMPOTENT[hook] ? 1 : 0);
      if (answer.kind === 'disconnect') outcome = 'disconnect';
      return answer;
    } catch (err) {
      const code = (err as HeraldError).code;
      outcome = code === ErrorCode.BACKEND_UNAVAILABLE ? 'unavailable' : code === ErrorCode.BACKEND_ERROR ? 'invalid' : 'refused';
      throw err;
    } finally {
      this.observe(hook, outcome, (performance.now() - start) / 1000);
      this.inFlight--;
      if (owner) {
        const left = (this.perOwner.get(owner.id) ?? 1) - 1;
        if (left <= 0) this.perOwner.delete(owner.id);
        else this.perOwner.set(owner.id, left);
      }
    }
  }

  private async attempt<R>(hook: HookName, target: HookTarget, body: string, retries: number): Promise<HookAnswer<R>> {
    let res: Response;
    const signal = AbortSignal.timeout(target.timeoutMs);
    const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
    if (this.secrets.length > 0) headers[SIGNATURE_HEADER] = signatureHeader(this.secrets, Math.floor(Date.now() / 1000), body, PROXY_DOMAIN);
    try {
      res = await fetch(target.url, { method: 'POST', headers, body, signal, redirect: 'error' });
    } catch (err) {
      if (signal.aborted) throw unavailable(hook, `no answer within ${target.timeoutMs} ms (proxy.${hook}.timeoutMs)`);
      // Refused or reset before an answer: the request was not handled, so trying again is safe
      // for a hook whose effect does not add up.
      if (retries > 0 && unreached(err)) return this.attempt(hook, target, body, retries - 1);
      throw unavailable(hook, `cannot reach the backend: ${describe(err)}`);
    }
    if (res.status !== 200) {
      // The status decides; the body of a failed answer is not worth reading.
      await res.body?.cancel().catch(() => undefined);
      if (res.status >= 500) throw unavailable(hook, `the backend answered HTTP ${res.status}`);
      throw invalid(hook, `the backend answered HTTP ${res.status}; hooks answer 200 with {result}, {error} or {disconnect}`);
    }
    let text: string;
    try {
      text = await readCappedText(res, this.limits.maxResponseBytes);
    } catch (err) {
      if (signal.aborted) throw unavailable(hook, `no answer within ${target.timeoutMs} ms (proxy.${hook}.timeoutMs)`);
      if (err instanceof AnswerTooLarge) throw invalid(hook, `the answer is larger than proxy.maxResponseBytes (${err.max})`);
      throw unavailable(hook, `the answer broke off: ${describe(err)}`);
    }
    // Parsed only within the depth client input is held to: a deeper answer would parse, then
    // break whatever serialises it later (a rewritten payload, an info shown through presence).
    if (exceedsJsonDepth(text, this.limits.maxJsonDepth)) throw invalid(hook, `the answer nests deeper than limits.maxJsonDepth (${this.limits.maxJsonDepth})`);
    let answer: unknown;
    try {
      answer = JSON.parse(text);
    } catch {
      throw invalid(hook, 'the answer is not JSON');
    }
    const validate = this.validators.get(hook)!;
    if (!validate(answer)) {
      const e = validate.errors?.[0];
      throw invalid(hook, `the answer does not match ${hook}Answer: ${e?.instancePath || '/'} ${e?.message ?? 'invalid'}`);
    }
    const a = answer as { result?: R; error?: { code: string; message: string; temporary?: boolean }; disconnect?: { code: number; reason: string } };
    if (a.error) throw new HeraldError(a.error.code, a.error.message, undefined, a.error.temporary === true);
    if (a.disconnect) return { kind: 'disconnect', code: a.disconnect.code, reason: a.disconnect.reason };
    return { kind: 'result', result: a.result as R };
  }
}

function unavailable(hook: HookName, why: string): HeraldError {
  return new HeraldError(ErrorCode.BACKEND_UNAVAILABLE, `${hook} hook: ${why}`);
}

function invalid(hook: HookName, why: string): HeraldError {
  return new HeraldError(ErrorCode.BACKEND_ERROR, `${hook} hook: ${why}`);
}

/** Whether a fetch failure means the request never reached the backend. */
function unreached(err: unknown): boolean {
  const code = (err as { cause?: { code?: unknown } }).cause?.code;
  return code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EHOSTUNREACH';
}

function describe(err: unknown): string {
  const cause = (err as { cause?: { code?: unknown; message?: unknown } }).cause;
  return String(cause?.code ?? cause?.message ?? (err as Error).message ?? err);
}
