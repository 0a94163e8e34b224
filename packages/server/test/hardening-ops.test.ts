/**
 * The operational endpoints: with `ops.keys`, `/metrics` and everything under `/docs` need one of
 * the keys (`Authorization: Bearer` or `X-API-Key`) while `/healthz` and `/readyz` stay open;
 * `ops.docs: false` serves no `/docs` at all.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { HeraldServer } from '../src/server.js';
import { API_KEY, startTestServer } from './helpers/server.js';

const OPS_KEY = 'ops-key-for-the-tests-0123456789';

let server: HeraldServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function get(path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; code?: string }> {
  const res = await fetch(`${server!.url}${path}`, { headers, redirect: 'manual' });
  const body = await res.text();
  let code: string | undefined;
  try {
    code = (JSON.parse(body) as { error?: { code?: string } }).error?.code;
  } catch {
    /* not JSON */
  }
  return { status: res.status, body, ...(code ? { code } : {}) };
}

const GUARDED = ['/metrics', '/docs', '/docs/', '/docs/json', '/docs/yaml', '/docs/static/index.html', '/docs/static/swagger-ui.css'];

describe('ops.keys', () => {
  it('guards /metrics and everything under /docs, and leaves /healthz and /readyz open', async () => {
    server = await startTestServer({ ops: { keys: [OPS_KEY] } });
    for (const path of GUARDED) {
      expect(await get(path), `${path} without a key`).toMatchObject({ status: 401, code: 'api_key_required' });
      expect(await get(path, { authorization: 'Bearer not-the-ops-key-0123456789' }), `${path} with a wrong key`).toMatchObject({ status: 401, code: 'invalid_api_key' });
      // An API key is for publishing, not for operations.
      expect(await get(path, { 'x-api-key': API_KEY }), `${path} with an api.keys key`).toMatchObject({ status: 401, code: 'invalid_api_key' });
      expect((await get(path, { authorization: `Bearer ${OPS_KEY}` })).status, `${path} with Bearer`).toBeLessThan(400);
      expect((await get(path, { 'x-api-key': OPS_KEY })).status, `${path} with X-API-Key`).toBeLessThan(400);
    }
    const metrics = await get('/metrics', { 'x-api-key': OPS_KEY });
    expect(metrics.body).toContain('# HELP');
    expect(JSON.parse((await get('/docs/json', { 'x-api-key': OPS_KEY })).body)).toMatchObject({ openapi: '3.0.3' });
    expect(await get('/healthz')).toMatchObject({ status: 200 });
    expect(await get('/readyz')).toMatchObject({ status: 200 });
  });

  it('accepts any of several keys', async () => {
    server = await startTestServer({ ops: { keys: ['first-ops-key-0123456789', OPS_KEY] } });
    expect((await get('/metrics', { authorization: 'Bearer first-ops-key-0123456789' })).status).toBe(200);
    expect((await get('/metrics', { authorization: `Bearer ${OPS_KEY}` })).status).toBe(200);
  });

  it('leaves the endpoints open when no key is configured (the documented default)', async () => {
    server = await startTestServer();
    expect((await get('/metrics')).status).toBe(200);
    expect((await get('/docs/json')).status).toBe(200);
  });
});

describe('ops.docs', () => {
  it('false serves no /docs at all, with or without keys', async () => {
    server = await startTestServer({ ops: { docs: false } });
    for (const path of ['/docs', '/docs/', '/docs/json', '/docs/static/index.html']) expect(await get(path), path).toMatchObject({ status: 404, code: 'not_found' });
    expect((await get('/metrics')).status).toBe(200);
    await server.close();
    server = await startTestServer({ ops: { docs: false, keys: [OPS_KEY] } });
    expect(await get('/docs/json', { 'x-api-key': OPS_KEY })).toMatchObject({ status: 404 });
    expect((await get('/metrics', { 'x-api-key': OPS_KEY })).status).toBe(200);
  });
});
