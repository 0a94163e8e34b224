import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { requireRedis, REDIS_URL } from './engine/services.js';
import { API_KEY, makeToken, SECRET, TestSocket } from './helpers/server.js';
import { CLI } from './helpers/paths.js';

const procs: ChildProcess[] = [];
const haveRedis = await requireRedis();
afterAll(() => {
  for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
});

function config(extra: object): string {
  const dir = mkdtempSync(join(tmpdir(), 'herald-workers-'));
  const file = join(dir, 'herald.json');
  writeFileSync(file, JSON.stringify({ server: { host: '127.0.0.1', port: 0 }, auth: { jwt: { hmacSecret: SECRET } }, api: { keys: [API_KEY] }, log: { level: 'info' }, ...extra }));
  return file;
}

describe('worker processes', () => {
  it('refuses several workers on an engine that cannot fan out between them', () => {
    const r = spawnSync(process.execPath, [CLI, 'serve', '--config', config({ engine: { type: 'sqlite' }, server: { workers: 2, port: 0, host: '127.0.0.1' } })], { encoding: 'utf8', timeout: 10_000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/server\.workers.*redis.*nats/);
  });

  it.runIf(haveRedis)('shares one port between workers, fans out across them, and drains all on SIGTERM', async () => {
    const port = 20000 + Math.floor(Math.random() * 20000);
    const file = config({ server: { host: '127.0.0.1', port, workers: 2 }, engine: { type: 'redis', redis: { url: REDIS_URL, prefix: `hw-${randomUUID().slice(0, 8)}` } } });
    const proc = spawn(process.execPath, [CLI, 'serve', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    procs.push(proc);
    let out = '';
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`workers did not start: ${out}`)), 20_000);
      const check = (d: Buffer) => {
        out += String(d);
        if ((out.match(/Herald listening/g) ?? []).length >= 2) {
          clearTimeout(t);
          resolve();
        }
      };
      proc.stdout!.on('data', check);
      proc.stderr!.on('data', check);
    });
    const sockets: TestSocket[] = [];
    for (let i = 0; i < 12; i++) {
      const s = await TestSocket.open(`ws://127.0.0.1:${port}/ws`);
      const reply = await s.request({ type: 'connect', token: await makeToken({ sub: `u${i}` }) });
      s.info = reply;
      await s.subscribe('everyone');
      sockets.push(s);
    }
    const nodes = new Set(sockets.map((s) => s.info.node));
    expect(nodes.size).toBe(2); // both workers hold connections
    const res = await fetch(`http://127.0.0.1:${port}/api/v1/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}` },
      body: JSON.stringify({ channel: 'everyone', eventType: 'x', payload: 'hello workers' }),
    });
    expect(res.status).toBe(200);
    for (const s of sockets) expect((await s.next((f) => f.type === 'message')).message.payload).toBe('hello workers');
    // Admin answers are cluster-wide across workers too, whichever worker takes the HTTP call.
    const get = async (path: string) => (await (await fetch(`http://127.0.0.1:${port}${path}`, { headers: { authorization: `Bearer ${API_KEY}` } })).json()) as any;
    const workers = [...nodes].sort();
    for (let i = 0; i < 4; i++) {
      expect(await get('/api/v1/channels?prefix=everyone')).toEqual({ channels: [{ channel: 'everyone', subscribers: 12 }], nodes: { replied: workers, missing: [] } });
      const stats = await get('/api/v1/stats');
      expect(stats.totals.connections).toBe(12);
      expect(stats.byNode.map((n: { node: string }) => n.node)).toEqual(workers);
    }
    expect((await get('/api/v1/nodes')).nodes.map((n: { node: string }) => n.node)).toEqual(workers);
    const kicked = await fetch(`http://127.0.0.1:${port}/api/v1/users/u0/disconnect`, { method: 'POST', headers: { authorization: `Bearer ${API_KEY}` } });
    expect(await kicked.json()).toEqual({ disconnected: 1, nodes: { replied: workers, missing: [] } });
    expect((await sockets[0]!.closed).code).toBe(4502);
    sockets.shift();
    const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
    proc.kill('SIGTERM');
    for (const s of sockets) expect((await s.closed).code).toBe(4001);
    expect(await exited).toBe(0);
  }, 40_000);
});
