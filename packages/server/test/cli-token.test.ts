/** `herald token` mints only what a server can accept; `herald token verify` answers as the configured server would. */
import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { runCli, tempFile } from './helpers/cli.js';
import { SECRET, startTestServer, TestSocket } from './helpers/server.js';

const config = (extra: object = {}) => tempFile('herald.json', JSON.stringify({ server: { host: '127.0.0.1' }, auth: { jwt: { hmacSecret: SECRET } }, channels: { public: ['news'] }, ...extra }));

describe('herald token', () => {
  it('mints a token the server accepts, from --secret or from --config', async () => {
    const server = await startTestServer();
    try {
      for (const source of [['--secret', SECRET], ['--config', config()]]) {
        const r = await runCli(['token', '--user', 'alice', '--channels', 'room:*', ...source]);
        expect(r.code, r.stderr).toBe(0);
        const s = await TestSocket.open(server.wsUrl);
        s.send({ type: 'connect', id: 1, token: r.stdout.trim() });
        expect((await s.next((f) => f.type === 'connected')).user).toBe('alice');
        s.close();
      }
    } finally {
      await server.close();
    }
  });

  it('refuses a secret shorter than the server accepts', async () => {
    const r = await runCli(['token', '--user', 'a', '--secret', 'short-secret']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe('herald token: --secret must be at least 32 characters: the server refuses a shorter auth.jwt.hmacSecret\n');
  });

  it('refuses a config whose published secret the server would refuse (beyond loopback)', async () => {
    const file = config({ server: { host: '0.0.0.0' }, auth: { jwt: { hmacSecret: 'dev-secret-change-me-0123456789abcdef' } } });
    const r = await runCli(['token', '--user', 'a', '--config', file]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^herald token: server\.host: "0\.0\.0\.0" is reachable from other machines, but auth\.jwt\.hmacSecret holds an example secret.*\n$/);
  });
});

describe('herald token verify', () => {
  it('says who, until when, and which channels', async () => {
    const token = (await runCli(['token', '--user', 'alice', '--secret', SECRET, '--channels', 'room:*,lobby', '--publish', 'room:*', '--tag', 'plan=pro', '--ttl', '600'])).stdout.trim();
    const r = await runCli(['token', 'verify', token, '--config', config(), '--json']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out).toMatchObject({ valid: true, user: 'alice', subscribe: ['room:*', 'lobby'], publish: ['room:*'], tags: { plan: 'pro' }, alsoPublicChannels: ['news'] });
    const expires = Date.parse(out.expiresAt);
    expect(expires).toBeGreaterThan(Date.now() + 590_000);
    expect(expires).toBeLessThanOrEqual(Date.now() + 601_000);
    const text = await runCli(['token', 'verify', token, '--config', config()]);
    expect(text.stdout).toMatch(/^valid: +yes\nuser: +alice\nexpires: +\S+ \(in 9m \d+s\)\nsubscribe: +room:\*, lobby \(and channels\.public: news\)/);
  });

  it('refuses a token signed with another secret, an expired one, and one without exp', async () => {
    const other = (await runCli(['token', '--user', 'a', '--secret', 'another-secret-0123456789-0123456789'])).stdout.trim();
    const key = new TextEncoder().encode(SECRET);
    const expired = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('a').setIssuedAt(Math.floor(Date.now() / 1000) - 120).setExpirationTime(Math.floor(Date.now() / 1000) - 60).sign(key);
    const noExp = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('a').sign(key);
    const cases: Array<[string, RegExp]> = [
      [other, /token refused: unauthorized: invalid token: bad signature/],
      [expired, /token refused: token_expired: .*\(exp \S+, 1m( \d+s)? ago\)/],
      [noExp, /token refused: unauthorized: invalid token: .*exp/],
    ];
    for (const [token, message] of cases) {
      const r = await runCli(['token', 'verify', token, '--config', config()]);
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr.split('\n').filter(Boolean)).toHaveLength(1);
      expect(r.stderr).toMatch(message);
    }
  });
});
