/**
 * Sending the inputs that need no attacker connection: HTTP requests (through Node's client, with
 * Content-Length or chunked framing) and raw bytes on a fresh TCP connection. Each logs its input
 * first, then counts the answer: HTTP status and error code, or the upgrade's status line.
 */
import { request, type Agent } from 'node:http';
import { connect } from 'node:net';
import type { Attacker } from './attacker.js';
import { LIVE_CONNECTION, resolvePath, type HttpSpec } from './http-inputs.js';
import type { RawInput } from './raw-inputs.js';
import { preview, type InputRecord } from './recorder.js';
import type { RunState } from './run-state.js';
import { closePayload, encodeFrame, Opcode } from './ws-framer.js';

const HTTP_TIMEOUT_MS = 15_000;
const RAW_WAIT_MS = 2000;
const MAX_RESPONSE = 256 * 1024;

/** The error code in an HTTP error body, if it has one. */
function errorCode(body: string): string | undefined {
  return /"code"\s*:\s*"([a-z_]+)"/.exec(body)?.[1];
}

/**
 * Sends one HTTP input. A path naming a live connection gets one of the attackers; after a
 * disconnect call that connection is watched: closed within a few seconds when the call
 * succeeded, still answering when it failed.
 */
export function sendHttp(run: RunState, spec: HttpSpec, agent: Agent, pickLive: () => Attacker | undefined, answerTimeoutMs: number, recorded?: InputRecord): Promise<void> {
  const target = spec.path.includes(LIVE_CONNECTION) ? pickLive() : undefined;
  const path = resolvePath(spec.path, target?.connectionId);
  const watch = target !== undefined && spec.method === 'POST' && /\/disconnect(\?|$)/.test(path);
  if (watch) target.hold();
  const headers: Record<string, string> = { ...spec.headers };
  const body = spec.body;
  if (body !== undefined) {
    if (spec.framing === 'length') headers['content-length'] = String(body.length);
    else headers['transfer-encoding'] = 'chunked';
  }
  const rec =
    recorded ??
    run.record({
      label: spec.label,
      target: 'http',
      http: { method: spec.method, path, headers, ...(body ? { body: body.toString('base64') } : {}), framing: spec.framing },
      preview: preview(`${spec.method} ${path} ${body ? body.subarray(0, 200).toString('latin1') : ''}`),
    });
  return new Promise((resolve) => {
    let settled = false;
    const done = (key: string): void => {
      if (settled) return;
      settled = true;
      if (watch) target.release();
      clearTimeout(timer);
      run.http.inc(key);
      resolve();
    };
    const holdMs = spec.mayHoldMs ?? 0;
    let req: ReturnType<typeof request> | undefined;
    const timer = setTimeout(() => {
      if (holdMs === 0) run.anomaly('http-hang', `${spec.method} ${path.slice(0, 200)}: no response within ${HTTP_TIMEOUT_MS} ms`, undefined, [rec]);
      req?.destroy();
      done('client-timeout');
    }, HTTP_TIMEOUT_MS + Math.min(holdMs, 5000));
    try {
      req = request({ host: run.host, port: run.port, method: spec.method, path, headers, agent });
    } catch (err) {
      done(`client-refused(${(err as NodeJS.ErrnoException).code ?? 'error'})`);
      return;
    }
    req.on('response', (res) => {
      let text = '';
      res.on('data', (c: Buffer) => {
        if (text.length < MAX_RESPONSE) text += c.toString('utf8');
      });
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        const code = errorCode(text);
        // 503 and 504 are documented answers (overloaded, broker unavailable, request timeout); any
        // other 5xx, or `internal` anywhere (a batch reports per-message errors), is an unexpected exception.
        if ((status >= 500 && status !== 503 && status !== 504) || /"code"\s*:\s*"internal"/.test(text)) {
          run.anomaly('internal-error', `${spec.method} ${path.slice(0, 120)} → HTTP ${status} ${text.slice(0, 300)}`, undefined, [rec]);
        }
        // Every refusal should carry Herald's error body; 431 comes from Node's header limit, before any route.
        if (status >= 400 && status !== 431 && !isHeraldError(text)) {
          run.anomaly('undocumented-error', `${spec.method} ${path.slice(0, 120)} → HTTP ${status} without Herald's error body: ${text.slice(0, 300)}`, undefined, [rec]);
        }
        if (spec.pair) run.pairOutcome(spec.pair, `${status}${code ? ` ${code}` : ''}`, rec);
        if (watch) target.checkAfterDisconnect(status === 200, `${spec.label} → HTTP ${status}`, answerTimeoutMs, rec);
        done(`${status}${code ? ` ${code}` : isHeraldError(text) || status < 400 ? '' : ' (not a Herald error body)'}`);
      });
      res.on('error', () => done(`${res.statusCode} aborted`));
    });
    req.on('error', (err) => done(run.finishing ? 'cancelled-at-end' : `error ${(err as NodeJS.ErrnoException).code ?? err.message}`));
    if (body === undefined) req.end();
    else if (spec.framing === 'length') req.end(body);
    else {
      const cut = Math.floor(body.length / 2);
      req.write(body.subarray(0, cut));
      req.end(body.subarray(cut));
    }
  });
}

/** Writes the bytes on a new TCP connection and counts the status line of whatever answers. */
export function sendRaw(run: RunState, input: RawInput, recorded?: InputRecord): Promise<void> {
  const rec = recorded ?? run.record({ label: input.label, target: 'raw', bytes: input.bytes.toString('base64'), preview: preview(input.bytes) });
  return new Promise((resolve) => {
    const socket = connect({ host: run.host, port: run.port });
    let head = '';
    let finished = false;
    const finish = (key: string): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      run.upgrades.inc(key);
      socket.destroy();
      resolve();
    };
    const timer = setTimeout(() => finish(`${input.kind} ${statusOf(head) ?? 'no-response'}`), RAW_WAIT_MS);
    socket.on('error', () => undefined);
    socket.on('connect', () => socket.write(input.bytes));
    socket.on('data', (c: Buffer) => {
      if (head.length < 4096) head += c.toString('latin1');
      const status = statusOf(head);
      if (status === '101') {
        // Upgraded: leave like a client would, after the server had a moment to answer frames sent along.
        setTimeout(() => {
          if (!socket.destroyed) socket.write(encodeFrame({ opcode: Opcode.CLOSE, payload: closePayload(1000) }));
          finish(`${input.kind} 101`);
        }, 100);
      } else if (status !== undefined && head.includes('\r\n\r\n')) {
        if (status.startsWith('5') && status !== '503') run.anomaly('internal-error', `${input.label} → HTTP ${status}`, undefined, [rec]);
        // Let the body arrive, then count it.
        setTimeout(() => finish(`${input.kind} ${status}`), 50);
      }
    });
    socket.on('close', () => finish(`${input.kind} ${statusOf(head) ?? 'closed-without-response'}`));
  });
}

/** The documented shape: {"error":{"code","message","temporary",…}}. */
function isHeraldError(text: string): boolean {
  try {
    const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    return typeof body.error?.code === 'string' && typeof body.error.message === 'string';
  } catch {
    return false;
  }
}

function statusOf(head: string): string | undefined {
  return /^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1];
}
