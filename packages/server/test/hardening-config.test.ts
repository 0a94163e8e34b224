/**
 * Configuration input cannot reach `Object.prototype`: a `__proto__`, `constructor` or
 * `prototype` key from `--set`, the environment or a config file is refused with a ConfigError
 * naming it (and `herald serve` exits 2 with that one line). The HMAC secret minimum is 32
 * characters, for the server and for `herald token` alike.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { configFromAssignments, configFromEnv, ConfigError, mergeConfig, readConfigFile, resolveConfig } from '../src/config.js';
import { API_KEY, SECRET } from './helpers/server.js';
import { CLI } from './helpers/paths.js';


function tempFile(name: string, text: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'herald-config-')), name);
  writeFileSync(file, text);
  return file;
}

const baseConfig = () => ({ server: { host: '127.0.0.1', port: 0 }, auth: { jwt: { hmacSecret: SECRET } }, api: { keys: [API_KEY] }, engine: { type: 'memory' } });

function serve(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [CLI, 'serve', '--config', tempFile('herald.json', JSON.stringify(baseConfig())), ...args], {
    encoding: 'utf8',
    timeout: 10_000,
    env: { ...process.env, ...env },
  });
}

function expectRefused(r: ReturnType<typeof spawnSync>, key: RegExp): void {
  expect(r.signal, `herald serve started instead of refusing: ${String(r.stdout)}`).toBeNull();
  expect(r.status).toBe(2);
  expect(String(r.stderr)).toMatch(key);
  expect(String(r.stderr).trim().split('\n')).toHaveLength(1);
}

const polluted = () => (Object.prototype as Record<string, unknown>).polluted;

afterEach(() => {
  // Should a test fail by polluting, do not let it spoil the tests after it.
  delete (Object.prototype as Record<string, unknown>).polluted;
});

describe('unsafe configuration keys', () => {
  it.each([
    ['__proto__.polluted=1', /^__proto__: "__proto__" is not allowed/],
    ['server.__proto__.polluted=1', /^server\.__proto__: "__proto__" is not allowed/],
    ['constructor.prototype.polluted=1', /^constructor: "constructor" is not allowed/],
    ['server={"__proto__":{"polluted":1}}', /^server\.__proto__: /],
    ['ingest.redisStreams=[{"stream":"s","__proto__":{"polluted":1}}]', /^ingest\.redisStreams\.0\.__proto__: /],
  ])('--set %s is refused, naming the key, and pollutes nothing', (assignment, message) => {
    let error: unknown;
    try {
      configFromAssignments([assignment]);
    } catch (err) {
      error = err;
    }
    expect(polluted()).toBeUndefined();
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toMatch(message);
  });

  it.each([
    [{ HERALD_SERVER__HTTP: '{"__proto__":{"polluted":1}}' }, /^server\.http\.__proto__: /],
    [{ HERALD_AUTH__CONSTRUCTOR__PROTOTYPE__POLLUTED: '1' }, /^auth\.constructor: "constructor" is not allowed/],
    [{ HERALD_ORIGINS__PROTOTYPE: 'x' }, /^origins\.prototype: "prototype" is not allowed/],
  ])('the environment %j is refused, naming the key', (env, message) => {
    expect(() => configFromEnv(env)).toThrow(ConfigError);
    expect(() => configFromEnv(env)).toThrow(message);
    expect(polluted()).toBeUndefined();
  });

  it('a config file with a "__proto__" key is refused, naming the key', () => {
    const file = tempFile('proto.json', '{"server": {"port": 0}, "limits": {"__proto__": {"polluted": 1}}}');
    expect(() => readConfigFile(file)).toThrow(ConfigError);
    expect(() => readConfigFile(file)).toThrow(/limits\.__proto__: "__proto__" is not allowed/);
  });

  it('mergeConfig refuses a "__proto__" own key (as JSON.parse makes) instead of replacing a prototype', () => {
    const layer = JSON.parse('{"channels": {"namespaces": {"__proto__": {"history": {"size": 1}}}}}') as Record<string, unknown>;
    expect(() => mergeConfig({ channels: { namespaces: {} } }, layer)).toThrow(/channels\.namespaces\.__proto__/);
    expect(() => resolveConfig(layer)).toThrow(ConfigError);
    expect(() => resolveConfig(JSON.parse('{"__proto__": {"polluted": 1}}'))).toThrow(/^__proto__: /);
    expect(polluted()).toBeUndefined();
  });

  it('herald serve exits 2 with one line naming the key, from a flag, the environment or a file', () => {
    expectRefused(serve(['--set', '__proto__.polluted=1']), /herald: __proto__: "__proto__" is not allowed as a configuration key/);
    expectRefused(serve([], { HERALD_SERVER__HTTP: '{"__proto__":{"polluted":1}}' }), /herald: server\.http\.__proto__: "__proto__" is not allowed/);
    const file = tempFile('proto.json', JSON.stringify(baseConfig()).replace('"server":{', '"server":{"__proto__":{"polluted":1},'));
    expectRefused(serve(['--config', file]), /herald: config file .*proto\.json: server\.__proto__: "__proto__" is not allowed/);
  });
});

describe('HMAC secret minimum', () => {
  it('is 32 characters', () => {
    expect(() => resolveConfig({ auth: { jwt: { hmacSecret: 'x'.repeat(31) } } })).toThrow('auth.jwt.hmacSecret: must be at least 32 characters');
    expect(resolveConfig({ auth: { jwt: { hmacSecret: 'x'.repeat(32) } } }).auth.jwt.hmacSecret).toHaveLength(32);
    expect(resolveConfig().auth.jwt.hmacSecret).toBe(''); // none: no HMAC tokens
  });

  it('herald token refuses a secret the server would refuse, and mints with one it accepts', () => {
    const token = (secret: string, ...more: string[]) => spawnSync(process.execPath, [CLI, 'token', '--user', 'alice', '--secret', secret, ...more], { encoding: 'utf8', timeout: 10_000 });
    const short = token('x'.repeat(31));
    expect(short.status).toBe(2);
    expect(short.stdout).toBe('');
    expect(short.stderr).toMatch(/--secret must be at least 32 characters/);
    const ok = token('x'.repeat(32));
    expect(ok.status).toBe(0);
    expect(ok.stdout.trim().split('.')).toHaveLength(3);
    const payload = JSON.parse(Buffer.from(ok.stdout.trim().split('.')[1]!, 'base64url').toString()) as { exp?: number };
    expect(payload.exp).toBeGreaterThan(Date.now() / 1000);
    const noTtl = token('x'.repeat(32), '--ttl', '0');
    expect(noTtl.status).toBe(2);
    expect(noTtl.stderr).toMatch(/--ttl/);
  });
});
