/** The admin UI's calls to /admin/api/*: same-origin, the session cookie sent by the browser, the CSRF token on every POST. */
export interface ApiError {
  code: string;
  message: string;
}

export class AdminApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

let csrf = '';
let sessionLost: () => void = () => undefined;

/** Called when a call finds the session gone (expired, logged out elsewhere, node restarted). */
export function onSessionLost(handler: () => void): void {
  sessionLost = handler;
}

export function setCsrf(token: string): void {
  csrf = token;
}

async function call<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (method === 'POST') {
    headers['content-type'] = 'application/json';
    // Before login there is no token; the header's presence is what the server checks then.
    headers['x-herald-csrf'] = csrf || 'login';
  }
  const res = await fetch(`/admin/api${path}`, { method, headers, credentials: 'same-origin', body: method === 'POST' ? JSON.stringify(body ?? {}) : undefined });
  const text = await res.text();
  const json = text ? (JSON.parse(text) as unknown) : {};
  if (!res.ok) {
    const err = (json as { error?: ApiError }).error;
    if (err?.code === 'admin_login_required') sessionLost();
    throw new AdminApiError(res.status, err?.code ?? 'http_error', err?.message ?? `HTTP ${res.status}`);
  }
  return json as T;
}

export const get = <T>(path: string): Promise<T> => call<T>('GET', path);
export const post = <T>(path: string, body?: unknown): Promise<T> => call<T>('POST', path, body);
export const enc = encodeURIComponent;
