/**
 * Visible refusals: `herald serve` warns at start-up when its origins exclude its own address,
 * and logs each kind of refused connection at warn — once per window, with a count of what it
 * held back — naming the client and the config key to change.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { RefusalLog } from '../src/refusal-log.js';
import { CliProcess, tempFile } from './helpers/cli.js';
import { makeToken, SECRET } from './helpers/server.js';

describe('RefusalLog', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('logs the first refusal per reason at once, then one summary with the count held back', () => {
    vi.useFakeTimers();
    const lines: Array<{ obj: Record<string, unknown>; msg: string }> = [];
    const log = new RefusalLog({ warn: (obj, msg) => lines.push({ obj: obj as Record<string, unknown>, msg }) }, 10_000);
    log.refused('origin', { ip: '203.0.113.5', origin: 'http://evil.example' });
    for (let i = 0; i < 5; i++) log.refused('origin', { ip: '203.0.113.5', origin: 'http://evil.example' });
    log.refused('per_ip', { ip: '203.0.113.6' });
    expect(lines).toHaveLength(2);
    expect(lines[0]).toEqual({
      obj: { reason: 'origin', ip: '203.0.113.5', origin: 'http://evil.example', configKey: 'origins.allowed' },
      msg: 'refused a WebSocket connection from 203.0.113.5 (Origin http://evil.example): its Origin is not allowed; add http://evil.example to origins.allowed',
    });
    expect(lines[1]!.obj).toMatchObject({ reason: 'per_ip', configKey: 'limits.maxConnectionsPerIp' });
    vi.advanceTimersByTime(10_000);
    // Five origin refusals were held back; per_ip had none, so no summary for it.
    expect(lines).toHaveLength(3);
    expect(lines[2]).toEqual({
      obj: { reason: 'origin', configKey: 'origins.allowed', suppressed: 5 },
      msg: 'refused 5 more WebSocket connections (its Origin is not allowed) in the last 10 s; see origins.allowed',
    });
    // A new window: the next refusal is logged in full again.
    log.refused('origin', { ip: '198.51.100.7', origin: 'http://other.example' });
    expect(lines).toHaveLength(4);
    expect(lines[3]!.obj).toMatchObject({ ip: '198.51.100.7', origin: 'http://other.example' });
    log.close();
  });
});

describe('herald serve logs refusals', () => {
  let proc: CliProcess | undefined;
  afterEach(async () => {
    proc?.stop();
    await proc?.exited;
    proc = undefined;
  });

  const warnings = (p: CliProcess) => p.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, any>).filter((l) => l.level === 40);

  function upgrade(port: number, headers: Record<string, string> = {}): Promise<number> {
    return new Promise((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, { headers });
      ws.on('unexpected-response', (_req, res) => {
        resolve(res.statusCode ?? 0);
        ws.terminate();
      });
      ws.on('open', () => {
        resolve(101);
        ws.close();
      });
      ws.on('error', () => {});
    });
  }

  it('warns at start-up that origins.allowed excludes its own address, naming the port it bound', async () => {
    const config = tempFile('herald.json', JSON.stringify({
      server: { host: '127.0.0.1', port: 0, demoPage: true },
      auth: { jwt: { hmacSecret: SECRET } },
      api: { keys: ['cli-test-api-key'] },
      origins: { allowed: ['https://app.example.com'] },
      engine: { type: 'memory' },
    }));
    proc = new CliProcess(['serve', '--config', config]);
    await proc.until((p) => /"port":\d+/.test(p.stdout));
    const port = Number(/"port":(\d+)/.exec(proc.stdout)![1]);
    await proc.until((p) => warnings(p).some((w) => w.msg.startsWith('origins.allowed does not include')));
    const startWarning = warnings(proc).find((w) => w.msg.startsWith('origins.allowed does not include'))!;
    expect(startWarning.msg).toContain(`(http://localhost:${port} or http://127.0.0.1:${port})`);
    expect(startWarning.msg).toContain('the demo page');

    // Three refused upgrades from a foreign origin: 403 each, one warn line.
    for (let i = 0; i < 3; i++) expect(await upgrade(port, { Origin: 'http://evil.example' })).toBe(403);
    await proc.until((p) => warnings(p).some((w) => w.reason === 'origin'));
    // Without an Origin (a server-side client) the upgrade is accepted: a token it does not have is the next refusal.
    const bad = new WebSocket(`ws://127.0.0.1:${port}/ws`);
    await new Promise((r) => bad.once('open', r));
    bad.send(JSON.stringify({ type: 'connect', id: 1, token: await makeToken({ secret: 'some-other-secret-0123456789-abcdef' }) }));
    await new Promise((r) => bad.once('close', r));
    await proc.until((p) => warnings(p).some((w) => w.reason === 'auth'));
    const origin = warnings(proc).filter((w) => w.reason === 'origin');
    expect(origin).toHaveLength(1);
    expect(origin[0]).toMatchObject({ ip: '127.0.0.1', origin: 'http://evil.example', configKey: 'origins.allowed' });
    expect(origin[0]!.msg).toContain('add http://evil.example to origins.allowed');
    expect(warnings(proc).find((w) => w.reason === 'auth')).toMatchObject({ ip: '127.0.0.1', configKey: expect.stringContaining('auth.jwt') });
  });
});
