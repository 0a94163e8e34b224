/**
 * One webhook request: POST the body, wait for the status line within the timeout, and ignore
 * whatever the receiver sends after it (the socket is destroyed, so a huge or endless response
 * costs nothing). Redirects are not followed: a 3xx is a failure like any other non-2xx.
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

export type SendOutcome = { ok: true; status: number } | { ok: false; reason: 'status' | 'timeout' | 'network'; error: string };

export interface SendRequest {
  url: URL;
  headers: Record<string, string>;
  body: string;
  timeoutMs: number;
  signal?: AbortSignal;
}

export function sendWebhook(req: SendRequest): Promise<SendOutcome> {
  return new Promise((resolve) => {
    let settled = false;
    const finish = (outcome: SendOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.signal?.removeEventListener('abort', onAbort);
      client.destroy();
      resolve(outcome);
    };
    const send = req.url.protocol === 'https:' ? httpsRequest : httpRequest;
    const body = Buffer.from(req.body, 'utf8');
    const client = send(req.url, {
      method: 'POST',
      headers: { ...req.headers, 'content-type': 'application/json', 'content-length': String(body.length) },
      // A fresh connection per request: no pooled socket left half-read by a response we ignore.
      agent: false,
    });
    // The whole exchange, connect included, up to the status line.
    const timer = setTimeout(() => finish({ ok: false, reason: 'timeout', error: `no answer within ${req.timeoutMs} ms` }), req.timeoutMs);
    const onAbort = () => finish({ ok: false, reason: 'network', error: 'aborted: the node is shutting down' });
    req.signal?.addEventListener('abort', onAbort, { once: true });
    client.on('response', (res) => {
      const status = res.statusCode ?? 0;
      res.destroy();
      finish(status >= 200 && status < 300 ? { ok: true, status } : { ok: false, reason: 'status', error: `HTTP ${status}` });
    });
    client.on('error', (err) => finish({ ok: false, reason: 'network', error: err.message }));
    client.end(body);
  });
}
