/**
 * One webhook request: POST the body and decide on the status line, within the timeout. What the
 * receiver sends after the status line is read and thrown away up to `MAX_DRAIN_BYTES` (so the
 * kept-alive connection can carry the next request); a longer or endless body, or one still
 * coming after the timeout, gets the connection destroyed — it costs nothing beyond that.
 * Redirects are not followed: a 3xx is a failure like any other non-2xx.
 */
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';

export type SendOutcome = { ok: true; status: number } | { ok: false; reason: 'status' | 'timeout' | 'network'; error: string };

export interface SendRequest {
  url: URL;
  headers: Record<string, string>;
  body: string;
  timeoutMs: number;
  signal?: AbortSignal;
  /** Keep-alive connections to this endpoint (see `endpointAgent`); a fresh connection without one. */
  agent?: HttpAgent;
}

const MAX_DRAIN_BYTES = 64 * 1024;

/** Kept-alive connections for one endpoint, at most `sockets` at a time. */
export function endpointAgent(url: URL, sockets: number): HttpAgent {
  const opts = { keepAlive: true, maxSockets: sockets, maxFreeSockets: sockets, scheduling: 'lifo' as const };
  return url.protocol === 'https:' ? new HttpsAgent(opts) : new HttpAgent(opts);
}

export function sendWebhook(req: SendRequest): Promise<SendOutcome> {
  return new Promise((resolve) => {
    let settled = false;
    const finish = (outcome: SendOutcome, destroy: boolean) => {
      if (destroy) client.destroy();
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.signal?.removeEventListener('abort', onAbort);
      resolve(outcome);
    };
    const send = req.url.protocol === 'https:' ? httpsRequest : httpRequest;
    const body = Buffer.from(req.body, 'utf8');
    const client = send(req.url, {
      method: 'POST',
      headers: { ...req.headers, 'content-type': 'application/json', 'content-length': String(body.length) },
      agent: req.agent ?? false,
    });
    // The whole exchange, connect included, up to the status line; then the rest of the body.
    const timer = setTimeout(() => finish({ ok: false, reason: 'timeout', error: `no answer within ${req.timeoutMs} ms` }, true), req.timeoutMs);
    const onAbort = () => finish({ ok: false, reason: 'network', error: 'aborted: the node is shutting down' }, true);
    req.signal?.addEventListener('abort', onAbort, { once: true });
    client.on('response', (res) => {
      const status = res.statusCode ?? 0;
      finish(status >= 200 && status < 300 ? { ok: true, status } : { ok: false, reason: 'status', error: `HTTP ${status}` }, false);
      let read = 0;
      const drainTimer = setTimeout(() => client.destroy(), req.timeoutMs);
      res.on('data', (chunk: Buffer) => {
        read += chunk.length;
        if (read > MAX_DRAIN_BYTES) client.destroy();
      });
      res.on('close', () => clearTimeout(drainTimer));
      res.on('error', () => undefined);
    });
    client.on('error', (err) => finish({ ok: false, reason: 'network', error: err.message }, true));
    client.end(body);
  });
}
