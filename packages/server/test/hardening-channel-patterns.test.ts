/**
 * Channel patterns are matched without backtracking: the same answers as the regular expression
 * they used to compile to, on random patterns and names, and a pattern with many `*` against a
 * long name that never matches — which the regular expression took minutes over — answers at once,
 * also through a real server where an anonymous client picks the name.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ChannelPatterns } from '../src/channels.js';
import { API_KEY, SECRET, TestSocket } from './helpers/server.js';
import { CLI, serverFile } from './helpers/paths.js';

const CHANNELS = serverFile('dist/channels.js');

/** What `ChannelPatterns` did before: one anchored regular expression per pattern, `*` → `.*`. */
function regexMatches(patterns: string[], name: string): boolean {
  const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return patterns.some((p) => p === '*' || new RegExp(`^${p.split('*').map(escape).join('.*')}$`).test(name));
}

/** A deterministic generator (mulberry32), so a failure can be replayed. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// 5 wildcards against a 255-character name (the longest channel name) with no `y` in it.
const ADVERSARIAL_PATTERN = 'x*x*x*x*x*y';
const ADVERSARIAL_NAME = 'x'.repeat(255);

describe('ChannelPatterns', () => {
  it('answers like the old regular expressions on random patterns and names', () => {
    const next = random(11);
    const pick = (alphabet: string, max: number) => Array.from({ length: Math.floor(next() * (max + 1)) }, () => alphabet[Math.floor(next() * alphabet.length)]).join('');
    let matched = 0;
    for (let i = 0; i < 20_000; i++) {
      const patterns = Array.from({ length: 1 + Math.floor(next() * 2) }, () => pick('ab:**', 7));
      const name = pick('ab:', 9);
      const expected = regexMatches(patterns, name);
      expect(new ChannelPatterns(patterns).matches(name), `${JSON.stringify(patterns)} on ${JSON.stringify(name)}`).toBe(expected);
      if (expected) matched++;
    }
    // Both answers occur often enough for the comparison to mean something.
    expect(matched).toBeGreaterThan(2_000);
    expect(matched).toBeLessThan(18_000);
  });

  it.each([
    [['chat:*'], 'chat:', true],
    [['chat:*'], 'chat', false],
    [['*:admin'], 'ops:admin', true],
    [['a*a'], 'a', false],
    [['a*a'], 'aa', true],
    [['*ab*ab*'], 'abab', true],
    [['*ab*ab*'], 'aba', false],
    [['user:*:inbox'], 'user:alice:inbox', true],
    [['user:*:inbox'], 'user::inbox', true],
    [['user:*:inbox'], 'user:inbox', false],
    [['**'], 'anything', true],
    [['exact'], 'exact', true],
    [['exact'], 'exactly', false],
    [[], 'x', false],
  ])('%j on %j → %s', (patterns, name, expected) => {
    expect(new ChannelPatterns(patterns).matches(name)).toBe(expected);
    expect(regexMatches(patterns, name)).toBe(expected);
  });

  it('decides a many-wildcard pattern against a long name at once (the regular expression ran for minutes)', () => {
    // In a child process, so the old code's minutes-long match is cut off by the timeout instead
    // of blocking this test run. The bound is far above what the linear matcher needs.
    const script = `
      const { ChannelPatterns } = await import(${JSON.stringify(CHANNELS)});
      const p = new ChannelPatterns([${JSON.stringify(ADVERSARIAL_PATTERN)}, '*a*b*c*d*e*f*g*h*']);
      let n = 0;
      for (let i = 0; i < 1000; i++) if (p.matches(${JSON.stringify(ADVERSARIAL_NAME)})) n++;
      process.stdout.write(String(n));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 15_000 });
    expect(r.signal, 'the match did not finish within 15 s').toBeNull();
    expect(r.stdout).toBe('0');
  });
});

describe('adversarial public pattern on a real server', () => {
  let child: ReturnType<typeof spawn> | undefined;
  afterEach(() => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    child = undefined;
  });

  it('answers an anonymous subscribe to a long name at once and keeps serving', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-glob-'));
    const file = join(dir, 'herald.json');
    writeFileSync(file, JSON.stringify({
      server: { host: '127.0.0.1', port: 0 },
      auth: { anonymous: true, jwt: { hmacSecret: SECRET } },
      api: { keys: [API_KEY] },
      channels: { public: [ADVERSARIAL_PATTERN, 'news:*'] },
      engine: { type: 'memory' },
    }));
    // A separate process: with the old matcher the server's event loop would be stuck for minutes.
    child = spawn(process.execPath, [CLI, 'serve', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    const port = await new Promise<number>((resolve, reject) => {
      let out = '';
      child!.stdout!.on('data', (d: Buffer) => {
        out += String(d);
        const m = /"port":(\d+)/.exec(out);
        if (m) resolve(Number(m[1]));
      });
      child!.on('exit', (code) => reject(new Error(`herald exited ${code}: ${out}`)));
    });
    const attacker = await TestSocket.open(`ws://127.0.0.1:${port}/ws`);
    expect(await attacker.request({ type: 'connect' })).toMatchObject({ type: 'connected' });
    const reply = await attacker.request({ type: 'subscribe', channel: ADVERSARIAL_NAME }, 10_000);
    expect(reply).toMatchObject({ type: 'error', error: { code: 'permission_denied' } });
    const bystander = await TestSocket.open(`ws://127.0.0.1:${port}/ws`);
    expect(await bystander.request({ type: 'connect' }, 10_000)).toMatchObject({ type: 'connected' });
    expect(await bystander.request({ type: 'subscribe', channel: 'news:today' })).toMatchObject({ type: 'subscribed' });
  });
});
