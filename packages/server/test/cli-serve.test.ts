import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { API_KEY, makeToken, SECRET, TestSocket } from './helpers/server.js';
import { CLI } from './helpers/paths.js';

let child: ChildProcess | undefined;
afterEach(() => {
  if (child && child.exitCode === null) child.kill('SIGKILL');
  child = undefined;
});

function writeConfig(extra: object = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'herald-cli-'));
  const file = join(dir, 'herald.json');
  writeFileSync(file, JSON.stringify({
    server: { host: '127.0.0.1', port: 0 },
    auth: { jwt: { hmacSecret: SECRET } },
    api: { keys: [API_KEY] },
    engine: { type: 'memory' },
    ...extra,
  }));
  return file;
}

async function startCli(args: string[], env: Record<string, string> = {}): Promise<{ port: number; proc: ChildProcess; logs: string[] }> {
  const proc = spawn(process.execPath, [CLI, 'serve', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  child = proc;
  const logs: string[] = [];
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no listening line: ${logs.join('')}`)), 10_000);
    proc.stdout!.on('data', (d: Buffer) => {
      logs.push(String(d));
      const m = /"port":(\d+)/.exec(String(d));
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    proc.stderr!.on('data', (d: Buffer) => logs.push(String(d)));
    proc.on('exit', (code) => reject(new Error(`exited ${code}: ${logs.join('')}`)));
  });
  return { port, proc, logs };
}

describe('herald serve', () => {
  it('drains on SIGTERM: not ready, clients closed with 4001, exit 0', async () => {
    const { port, proc } = await startCli(['--config', writeConfig({ shutdown: { drainTimeoutMs: 3000 } })]);
    const s = await TestSocket.open(`ws://127.0.0.1:${port}/ws`);
    s.send({ type: 'connect', id: 1, token: await makeToken() });
    await s.next((f) => f.type === 'connected');
    const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
    proc.kill('SIGTERM');
    expect((await s.closed).code).toBe(4001);
    expect(await exited).toBe(0);
  });

  it('takes configuration from environment variables and flags', async () => {
    const { port } = await startCli(['--config', writeConfig(), '--set', 'limits.maxConnections=1'], { HERALD_HEARTBEAT__INTERVAL_MS: '17000' });
    const s = await TestSocket.open(`ws://127.0.0.1:${port}/ws`);
    s.send({ type: 'connect', id: 1, token: await makeToken() });
    expect(await s.next()).toMatchObject({ type: 'connected', pingInterval: 17000 });
    await expect(TestSocket.open(`ws://127.0.0.1:${port}/ws`)).rejects.toMatchObject({ status: 503 });
  });

  it.each([
    [['--set', 'limits.maxConnections=-5'], /limits\.maxConnections/],
    [['--set', 'heartbeat.intervalMs=abc'], /heartbeat\.intervalMs/],
    [['--set', 'limits.bogusKey=1'], /limits.*bogusKey/],
    [['--set', 'log.level=loud'], /log\.level/],
  ])('refuses a bad value %j with a message naming the key', (args, pattern) => {
    const r = spawnSync(process.execPath, [CLI, 'serve', '--config', writeConfig(), ...args], { encoding: 'utf8', timeout: 10_000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(pattern);
    expect(r.stderr).not.toMatch(/at .*\.js:\d+/);
  });

  it('refuses a config file that is not JSON', () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-cli-'));
    writeFileSync(join(dir, 'bad.json'), '{ nope');
    const r = spawnSync(process.execPath, [CLI, 'serve', '--config', join(dir, 'bad.json')], { encoding: 'utf8', timeout: 10_000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/not valid JSON/);
  });
});
