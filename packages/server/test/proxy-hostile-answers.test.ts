/**
 * A backend's answers are held to the limits client input is: one nested past
 * `limits.maxJsonDepth` is `backend_error` before it is parsed (it would parse, then break
 * whatever serialises it later), and an `info` larger than `auth.jwt.maxInfoBytes` — from the
 * connect or refresh hook as from the subscribe hook — is refused too. The connection that asked
 * gets the error; it and the server go on.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HeraldServer } from '../src/server.js';
import { TestBackend } from './helpers/backend.js';
import { makeToken, startTestServer, TestSocket } from './helpers/server.js';

let backend: TestBackend;
let server: HeraldServer;
const sockets: TestSocket[] = [];

/** `{"result":{"data":[[[…1…]]]}}`, written out rather than serialised. */
const nestedAnswer = (depth: number): string => `{"result":{"data":${'['.repeat(depth)}1${']'.repeat(depth)}}}`;

beforeAll(async () => {
  backend = await TestBackend.start();
  server = await startTestServer({
    proxy: { connect: { url: `${backend.url}/connect`, timeoutMs: 2000 }, rpc: { url: `${backend.url}/rpc`, timeoutMs: 2000 } },
    auth: { jwt: { maxInfoBytes: 256 } },
    limits: { maxJsonDepth: 32 },
  });
});

afterAll(async () => {
  for (const s of sockets) s.close();
  await server?.close();
  await backend?.close();
});

async function open(): Promise<TestSocket> {
  const s = await TestSocket.open(server.wsUrl);
  sockets.push(s);
  return s;
}

describe('hostile proxy hook answers', () => {
  it('an rpc answer nested past limits.maxJsonDepth is backend_error; the connection goes on', async () => {
    const s = await open();
    expect((await s.request({ type: 'connect', token: await makeToken({ sub: 'caller' }) })).type).toBe('connected');
    backend.on('rpc', (b: { method: string }) => (b.method === 'deep' ? { raw: { status: 200, body: nestedAnswer(5000) } } : { result: { data: 'fine' } }));
    s.send({ type: 'request', correlationId: 'd1', method: 'deep' });
    const deep = await s.next((f) => f.correlationId === 'd1');
    expect(deep.error).toMatchObject({ code: 'backend_error', temporary: true });
    expect(deep.error.message).toMatch(/maxJsonDepth/);
    s.send({ type: 'request', correlationId: 'd2', method: 'shallow' });
    expect(await s.next((f) => f.correlationId === 'd2')).toEqual({ type: 'response', correlationId: 'd2', data: 'fine' });
  });

  it('a connect answer with an info past auth.jwt.maxInfoBytes refuses the connect with backend_error', async () => {
    backend.on('connect', () => ({ result: { user: 'big', channels: ['*'], info: { pad: 'x'.repeat(600) } } }));
    const s = await open();
    const reply = await s.request({ type: 'connect' });
    expect(reply.type).toBe('error');
    expect(reply.error).toMatchObject({ code: 'backend_error' });
    expect(reply.error.message).toMatch(/maxInfoBytes/);
  });
});
