/** `herald config init` writes configs the server's loader accepts; `herald config check` validates, masks and warns. */
import { readFileSync, statSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../src/config.js';
import { closedPort, runCli, tempFile } from './helpers/cli.js';
import { serverFile } from './helpers/paths.js';

describe('herald config init', () => {
  for (const profile of ['dev', 'production'] as const) {
    it(`--profile ${profile} writes a config that config check and the server accept, with fresh secrets`, async () => {
      const out = `${tempFile('unused', '')}.${profile}.json`;
      const init = await runCli(['config', 'init', '--profile', profile, '--out', out]);
      expect(init.code, init.stderr).toBe(0);
      expect(init.stderr).toContain('auth.jwt.hmacSecret');
      expect(statSync(out).mode & 0o777).toBe(0o600);
      const written = JSON.parse(readFileSync(out, 'utf8'));
      // "$schema" points editors at the shipped schema, once the schema admits the key.
      const schema = JSON.parse(readFileSync(serverFile('api/config.schema.json'), 'utf8'));
      expect('$schema' in written).toBe('$schema' in schema.properties);
      expect(() => resolveConfig(written)).not.toThrow();
      const check = await runCli(['config', 'check', out]);
      expect(check.code, check.stderr).toBe(0);
      expect(check.stderr).toContain(`${out}: valid`);
      // Printed masked, and not the same secret twice.
      expect(check.stdout).not.toContain(written.auth.jwt.hmacSecret);
      const again = JSON.parse((await runCli(['config', 'init', '--profile', profile])).stdout);
      expect(again.auth.jwt.hmacSecret).not.toBe(written.auth.jwt.hmacSecret);
      expect(again.auth.jwt.hmacSecret.length).toBeGreaterThanOrEqual(32);
    });
  }

  it('does not overwrite a file without --force', async () => {
    const out = tempFile('existing.json', '{}');
    const r = await runCli(['config', 'init', '--out', out]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toMatch(/^herald config init: .*exists; give --force/);
    expect(readFileSync(out, 'utf8')).toBe('{}');
    expect((await runCli(['config', 'init', '--out', out, '--force'])).code).toBe(0);
  });
});

describe('herald config check', () => {
  it('prints the effective config with every secret masked, URL credentials included', async () => {
    const secret = 'a-very-private-hmac-secret-0123456789abcdef';
    const file = tempFile('herald.json', JSON.stringify({
      server: { host: '127.0.0.1' },
      auth: { jwt: { hmacSecret: secret } },
      api: { keys: ['private-api-key-1'] },
      ops: { keys: ['private-ops-key-1'] },
      engine: {
        type: 'redis',
        redis: { url: 'redis://herald:redis-pass-1@10.0.0.5:6379/0', sentinel: { password: 'sentinel-pass-1', sentinelPassword: 'sentinel-pass-2' }, cluster: { password: 'cluster-pass-1' } },
        nats: { servers: ['nats://user:nats-pass-1@10.0.0.6:4222'] },
      },
      ingest: { redisStreams: [{ url: 'redis://:stream-pass-1@10.0.0.7:6379', stream: 's' }] },
      proxy: { signing: { secrets: [{ kid: 'hooks-2026', secret: 'proxy-signing-pass-1' }] } },
    }));
    const r = await runCli(['config', 'check', file]);
    expect(r.code, r.stderr).toBe(0);
    for (const hidden of [secret, 'private-api-key-1', 'private-ops-key-1', 'redis-pass-1', 'sentinel-pass-1', 'sentinel-pass-2', 'cluster-pass-1', 'nats-pass-1', 'stream-pass-1', 'proxy-signing-pass-1']) {
      expect(r.stdout, hidden).not.toContain(hidden);
    }
    const shown = JSON.parse(r.stdout);
    expect(shown.auth.jwt.hmacSecret).toBe(`<masked: ${secret.length} characters>`);
    expect(shown.engine.redis.url).toBe('redis://herald:***@10.0.0.5:6379/0');
    expect(shown.engine.nats.servers).toEqual(['nats://user:***@10.0.0.6:4222']);
    // The key id stays readable: it says which secret is in use.
    expect(shown.proxy.signing.secrets).toEqual([{ kid: 'hooks-2026', secret: '<masked: 20 characters>' }]);
    // Everything else is the effective value: defaults filled in.
    expect(shown.limits.maxConnections).toBe(20000);
    expect(shown.engine.type).toBe('redis');
  });

  it('layers HERALD_* variables like serve does, unless --no-env', async () => {
    const file = tempFile('herald.json', JSON.stringify({ server: { host: '127.0.0.1' }, api: { keys: ['some-api-key-1'] } }));
    const env = { HERALD_LIMITS__MAX_CONNECTIONS: '77' };
    expect(JSON.parse((await runCli(['config', 'check', file], env)).stdout).limits.maxConnections).toBe(77);
    expect(JSON.parse((await runCli(['config', 'check', '--no-env', file], env)).stdout).limits.maxConnections).toBe(20000);
  });

  it('warns about risky settings, naming the keys', async () => {
    const file = tempFile('herald.json', JSON.stringify({
      server: { host: '127.0.0.1', port: 9000, demoPage: true },
      auth: { anonymous: true, jwt: { hmacSecret: '' } },
      origins: { allowed: ['http://localhost:8080'] },
    }));
    const r = await runCli(['config', 'check', file]);
    expect(r.code).toBe(0);
    const warnings = r.stderr.split('\n').filter((l) => l.startsWith('warning: '));
    expect(warnings.join('\n')).toContain('no JWT key (auth.jwt.hmacSecret');
    expect(warnings.join('\n')).toContain('auth.anonymous is on');
    expect(warnings.join('\n')).toContain('api.keys is empty');
    expect(warnings.join('\n')).toMatch(/origins\.allowed does not include this server's own address \(http:\/\/localhost:9000/);
    expect(r.stderr).toContain(`${file}: valid (${warnings.length} warnings)`);
  });

  it('warns about unsigned hook requests and plain-http backends beyond loopback, not on loopback', async () => {
    const secrets = [{ kid: 'k1', secret: 'a-webhook-secret-of-some-length' }];
    const remote = tempFile('herald.json', JSON.stringify({
      engine: { type: 'sqlite' },
      proxy: { rpc: { url: 'http://backend.internal:3000/rpc' }, connect: { url: 'https://backend.internal/connect' } },
      webhooks: { endpoints: [{ id: 'app', url: 'http://10.0.0.5/hooks', events: ['*'], secrets }] },
    }));
    const warnings = (await runCli(['config', 'check', '--no-env', remote])).stderr.split('\n').filter((l) => l.startsWith('warning: ')).join('\n');
    expect(warnings).toContain('proxy.rpc.url points at backend.internal and proxy.signing.secrets is empty');
    expect(warnings).toContain('proxy.connect.url points at backend.internal and proxy.signing.secrets is empty');
    expect(warnings).toContain('proxy.rpc.url is plain http to backend.internal');
    expect(warnings).not.toContain('proxy.connect.url is plain http');
    expect(warnings).toContain('webhooks.endpoints[0].url is plain http to 10.0.0.5');
    // Signed, and on loopback: nothing to say about the backends.
    const fine = tempFile('herald.json', JSON.stringify({
      engine: { type: 'sqlite' },
      proxy: { rpc: { url: 'https://backend.internal/rpc' }, connect: { url: 'http://127.0.0.1:3000/connect' }, signing: { secrets } },
      webhooks: { endpoints: [{ id: 'app', url: 'http://localhost:3000/hooks', events: ['*'], secrets }] },
    }));
    const quiet = (await runCli(['config', 'check', '--no-env', fine])).stderr;
    expect(quiet).not.toMatch(/proxy\.|webhooks\./);
  });

  it('warns about the published dev secret on loopback, and fails on it when bound to 0.0.0.0', async () => {
    const dev = serverFile('configs/dev.json');
    const ok = await runCli(['config', 'check', dev]);
    expect(ok.code).toBe(0);
    expect(ok.stderr).toContain('example secret published with Herald');
    const exposed = await runCli(['config', 'check', dev], { HERALD_SERVER__HOST: '0.0.0.0' });
    expect(exposed.code).toBe(1);
    expect(exposed.stderr.trim().split('\n')).toHaveLength(1);
    expect(exposed.stderr).toMatch(/^herald config check: server\.host: "0\.0\.0\.0" is reachable from other machines, but auth\.jwt\.hmacSecret and api\.keys hold an example secret/);
  });

  it('finds backend-integration mistakes the schema cannot see, as the server would at start', async () => {
    const secrets = [{ kid: 'k1', secret: 'a-webhook-secret-of-some-length' }];
    const hook = (url: string) => ({ url, events: ['*'], secrets, id: 'app' });
    const cases: Array<[object, RegExp]> = [
      [{ engine: { type: 'sqlite' }, webhooks: { endpoints: [hook('https://a.example/h'), hook('https://b.example/h')] } }, /webhooks\.endpoints\[1\]\.id: "app" is used twice/],
      [{ engine: { type: 'sqlite' }, webhooks: { endpoints: [{ ...hook('https://a.example/h'), secrets: [...secrets, ...secrets] }] } }, /webhooks\.endpoints\[0\]\.secrets: each kid must be different/],
      [{ engine: { type: 'sqlite' }, webhooks: { endpoints: [hook('http://[::1/h')] } }, /webhooks\.endpoints\[0\]\.url: not a URL/],
      [{ engine: { type: 'memory' }, webhooks: { endpoints: [hook('https://a.example/h')] } }, /webhooks\.endpoints: engine\.type "memory" keeps nothing across a restart/],
      [{ engine: { type: 'sqlite' }, webhooks: { endpoints: [hook('https://a.example/h')], retry: { initialMs: 5000, maxMs: 1000 } } }, /webhooks\.retry\.maxMs: must be at least webhooks\.retry\.initialMs/],
      [{ proxy: { connect: { url: 'https://user:pw@backend.example/connect' } } }, /proxy\.connect\.url: must not carry a user or password/],
      [{ proxy: { rpc: { url: 'http://[::1/rpc' } } }, /proxy\.rpc\.url: not a URL/],
      [{ proxy: { signing: { secrets: [...secrets, { kid: 'k1', secret: 'another-secret-of-some-length' }] } } }, /proxy\.signing\.secrets: each kid must be different/],
    ];
    for (const [config, message] of cases) {
      const r = await runCli(['config', 'check', '--no-env', tempFile('herald.json', JSON.stringify(config))]);
      expect(r.code, JSON.stringify(config)).toBe(1);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(message);
    }
    // Credentials in a webhook URL are fine: the sender uses them (basic auth).
    const ok = await runCli(['config', 'check', '--no-env', tempFile('herald.json', JSON.stringify({ engine: { type: 'sqlite' }, webhooks: { endpoints: [hook('https://u:p@a.example/h')] } }))]);
    expect(ok.stderr).toMatch(/valid/);
    expect(ok.code).toBe(0);
  });

  it('an invalid config: exit 1 and every problem on one line', async () => {
    const file = tempFile('herald.json', JSON.stringify({ limits: { maxConnections: -1, bogus: 1 }, server: { port: await closedPort() } }));
    const r = await runCli(['config', 'check', file]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('limits.maxConnections: must be >= 1');
    expect(lines[0]).toContain('"bogus"');
  });
});
