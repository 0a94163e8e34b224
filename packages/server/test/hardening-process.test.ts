/**
 * Issue 11, C1 against a real `herald serve` process: the frame that used to kill it is refused,
 * and the last-resort policy for faults nothing caught logs them at fatal level, closes the
 * clients cleanly and exits non-zero (never carries on in an unknown state).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FAULT_EXIT_CODE } from '../src/process-policy.js';
import { makeToken, SECRET, TestSocket } from './helpers/server.js';
import { CLI, serverFile } from './helpers/paths.js';

const FAULT = serverFile('test/fixtures/inject-fault.mjs');
let child: ChildProcess | undefined;
afterEach(() => {
  if (child && child.exitCode === null) child.kill('SIGKILL');
  child = undefined;
});

function writeConfig(extra: object = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'herald-fault-'));
  const file = join(dir, 'herald.json');
  writeFileSync(file, JSON.stringify({ server: { host: '127.0.0.1', port: 0 }, auth: { jwt: { hmacSecret: SECRET } }, engine: { type: 'memory' }, ...extra }));
  return file;
}

interface Running {
  port: number;
  proc: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

async function serve(config: string, env: Record<string, string> = {}): Promise<Running> {
  const proc = spawn(process.execPath, ['--import', FAULT, CLI, 'serve', '--config', config], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  child = proc;
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += String(d)));
  proc.stderr!.on('data', (d: Buffer) => (out += String(d)));
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no listening line: ${out}`)), 10_000);
    proc.stdout!.on('data', () => {
      const m = /"port":(\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    void exited.then((code) => reject(new Error(`exited ${code}: ${out}`)));
  });
  return { port, proc, output: () => out, exited };
}

async function client(port: number, sub: string): Promise<TestSocket> {
  const s = await TestSocket.open(`ws://127.0.0.1:${port}/ws`);
  s.send({ type: 'connect', id: 1, token: await makeToken({ sub }) });
  await s.next((f) => f.type === 'connected');
  return s;
}

const fatalLines = (out: string): Array<Record<string, unknown>> =>
  out
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l.level === 60);

describe('herald serve under faults', () => {
  it('survives the 6000-level echo request and keeps serving everyone', async () => {
    const { port, proc } = await serve(writeConfig({ rpc: { echo: true } }));
    const bystander = await client(port, 'bystander');
    const s = await client(port, 'mallory');
    const n = 6000;
    s.ws.send(`{"type":"request","correlationId":"c","method":"echo","data":${'['.repeat(n)}${']'.repeat(n)}}`);
    expect(await s.next((f) => f.type === 'error' || f.type === 'response')).toMatchObject({ type: 'error', error: { code: 'invalid_frame' } });
    bystander.send({ type: 'request', correlationId: 'b', method: 'echo', data: 'still here' });
    expect(await bystander.next((f) => f.type === 'response')).toMatchObject({ data: 'still here' });
    expect(proc.exitCode).toBeNull();
  });

  it.each([
    ['rejection', 'unhandledRejection', 'injected unhandled rejection'],
    ['exception', 'uncaughtException', 'injected uncaught exception'],
  ])('on an unhandled %s: logs it at fatal level, closes clients with 4001, exits 70', async (kind, event, message) => {
    const { port, proc, output, exited } = await serve(writeConfig(), { HERALD_TEST_FAULT: kind });
    const s = await client(port, 'u1');
    proc.kill('SIGUSR2');
    expect((await s.closed).code).toBe(4001);
    expect(await exited).toBe(FAULT_EXIT_CODE);
    const fatal = fatalLines(output());
    expect(fatal).toHaveLength(1);
    expect(fatal[0]).toMatchObject({ kind: event, err: { message } });
  });
});
