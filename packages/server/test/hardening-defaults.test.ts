/**
 * Safe defaults: `npm start` (packages/server/configs/dev.json) listens on 127.0.0.1, and no server listens
 * beyond loopback with a secret or key published in this repository — `herald serve` refuses with
 * one line and exit 2 — while your own secrets expose it deliberately.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, readConfigFile, resolveConfig } from '../src/config.js';
import { exposedWellKnownSecrets, isLoopbackHost, WELL_KNOWN_SECRETS } from '../src/exposure.js';
import { apiKeySecret } from '../src/http/api-key.js';
import { CLI, REPO_ROOT, serverFile } from './helpers/paths.js';

const DEV = serverFile('configs/dev.json');
const OWN_SECRET = 'my-own-secret-from-a-vault-0123456789';
const OWN_KEY = 'my-own-api-key-0123456789';

function serve(args: string[], env: Record<string, string> = {}) {
  // Never reaches listen when refused; the timeout ends a server that starts by mistake.
  return spawnSync(process.execPath, [CLI, 'serve', '--config', DEV, '--port', '0', '--set', 'engine.type=memory', ...args], {
    encoding: 'utf8',
    timeout: 10_000,
    env: { ...process.env, ...env },
  });
}

describe('configs/dev.json (npm start)', () => {
  it('listens on 127.0.0.1', () => {
    expect(resolveConfig(readConfigFile(DEV)).server.host).toBe('127.0.0.1');
    expect(JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')).scripts.start).toContain('--config packages/server/configs/dev.json');
  });

  it.each([
    [['--host', '0.0.0.0'], {}, /auth\.jwt\.hmacSecret and api\.keys/],
    [['--host', '::'], {}, /auth\.jwt\.hmacSecret and api\.keys/],
    [[], { HERALD_SERVER__HOST: '0.0.0.0' }, /auth\.jwt\.hmacSecret and api\.keys/],
    [['--host', '0.0.0.0'], { HERALD_AUTH__JWT__HMAC_SECRET: OWN_SECRET }, /but api\.keys holds/],
    [['--host', '192.0.2.10'], { HERALD_API__KEYS: OWN_KEY }, /but auth\.jwt\.hmacSecret holds/],
  ])('herald serve refuses %j %j with the published secrets', (args, env, keys) => {
    const r = serve(args, env);
    expect(r.signal, `herald serve started: ${r.stdout}`).toBeNull();
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^herald: server\.host: ".*" is reachable from other machines/);
    expect(r.stderr).toMatch(keys);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('exposes it deliberately with your own secrets', () => {
    const c = resolveConfig(readConfigFile(DEV), { server: { host: '0.0.0.0' }, auth: { jwt: { hmacSecret: OWN_SECRET } }, api: { keys: [OWN_KEY] } });
    expect(c.server.host).toBe('0.0.0.0');
  });

  it('keeps the published secrets on loopback addresses', () => {
    for (const host of ['127.0.0.1', '127.0.0.2', 'localhost', '::1', '[::1]', '::ffff:127.0.0.1']) {
      expect(isLoopbackHost(host), host).toBe(true);
      expect(() => resolveConfig(readConfigFile(DEV), { server: { host } }), host).not.toThrow();
    }
    for (const host of ['0.0.0.0', '::', '10.0.0.1', '::ffff:10.0.0.1', 'herald.example', 'localhost.evil.example']) {
      expect(isLoopbackHost(host), host).toBe(false);
      expect(() => resolveConfig(readConfigFile(DEV), { server: { host } }), host).toThrow(ConfigError);
    }
  });

  it('refuses a published key in ops.keys too', () => {
    expect(exposedWellKnownSecrets({ server: { host: '0.0.0.0' }, auth: { jwt: { hmacSecret: '', keySets: [] } }, api: { keys: [] }, ops: { keys: ['cluster-example-api-key-change-me'] } } as never)).toEqual(['ops.keys']);
  });
});

describe('the shipped example configurations', () => {
  const files = readdirSync(serverFile('configs')).filter((f) => f.endsWith('.json'));

  it('are all valid and listen on loopback only (default.json aside)', () => {
    for (const f of files) {
      const c = resolveConfig(readConfigFile(serverFile(`configs/${f}`)));
      if (f !== 'default.json') expect(isLoopbackHost(c.server.host), f).toBe(true);
      // A hop count: one proxy (nginx) in front of the cluster examples, none otherwise.
      expect(typeof c.server.trustProxy, f).toBe('number');
      expect(c.server.trustProxy, f).toBeLessThanOrEqual(1);
    }
  });

  it('hold no secret or key missing from WELL_KNOWN_SECRETS', () => {
    for (const f of files) {
      const c = resolveConfig(readConfigFile(serverFile(`configs/${f}`)));
      for (const secret of [c.auth.jwt.hmacSecret, ...c.api.keys.map(apiKeySecret), ...c.ops.keys].filter(Boolean)) expect(WELL_KNOWN_SECRETS.has(secret), `${f}: ${secret}`).toBe(true);
    }
  });
});
