/**
 * Every `HERALD_*` variable is configuration or a listed non-configuration variable: a misspelt
 * one stops the server like an unknown key in a file does, naming the nearest valid name. And a
 * config file may say which schema it follows (`"$schema"`), for editors.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configFromEnv, ConfigError, NON_CONFIG_VARIABLES, readConfigFile, resolveConfig } from '../src/config.js';
import { keyForEnvName } from '../src/config-schema.js';
import { API_KEY, SECRET } from './helpers/server.js';
import { CLI, REPO_ROOT, SERVER_ROOT } from './helpers/paths.js';

function tempFile(name: string, text: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'herald-config-env-')), name);
  writeFileSync(file, text);
  return file;
}

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('not refused');
}

describe('HERALD_* variables', () => {
  it('a misspelt one is refused, naming it and the nearest configuration variable', () => {
    expect(refusal(() => configFromEnv({ HERALD_LIMTS__MAX_CONNECTIONS: '5' }))).toBe(
      'invalid configuration:\n  - HERALD_LIMTS__MAX_CONNECTIONS: not a configuration variable (did you mean HERALD_LIMITS__MAX_CONNECTIONS?)',
    );
    expect(refusal(() => configFromEnv({ HERALD_AUTH__JWT__HMAC_SECRT: 'x', HERALD_LOG__LEVEL: 'warn' }))).toContain('HERALD_AUTH__JWT__HMAC_SECRT: not a configuration variable (did you mean HERALD_AUTH__JWT__HMAC_SECRET?)');
  });

  it('lists every unknown one, and names none when nothing is near', () => {
    const message = refusal(() => configFromEnv({ HERALD_COLOUR: 'red', HERALD_LIMITS__MAXCONNECTIONS: '5', HERALD_LIMITS: '{}' }));
    expect(message.split('\n')).toEqual([
      'invalid configuration:',
      '  - HERALD_COLOUR: not a configuration variable',
      '  - HERALD_LIMITS: not a configuration variable',
      '  - HERALD_LIMITS__MAXCONNECTIONS: not a configuration variable (did you mean HERALD_LIMITS__MAX_CONNECTIONS?)',
    ]);
  });

  it('the listed non-configuration variables are left alone, and other variables are not looked at', () => {
    const env = Object.fromEntries(Object.keys(NON_CONFIG_VARIABLES).map((name) => [name, 'x']));
    expect(configFromEnv({ ...env, PATH: '/bin', herald_limits__x: '1', HERALD_SERVER__PORT: '9000' })).toEqual({ server: { port: 9000 } });
  });

  it('no non-configuration variable could also be a configuration key', () => {
    for (const name of Object.keys(NON_CONFIG_VARIABLES)) expect(keyForEnvName(name), name).toBeUndefined();
  });

  it("every HERALD_* variable that Herald's own code and scripts read is configuration or listed", () => {
    const read = new Set<string>();
    const walk = (dir: string) => {
      for (const entry of readdirSync(dir)) {
        if (entry === 'node_modules' || entry === 'dist' || entry === 'build' || entry.startsWith('.git')) continue;
        const path = join(dir, entry);
        if (statSync(path).isDirectory()) walk(path);
        else if (/\.(ts|mjs|js|sh)$/.test(entry) || entry === 'run') {
          const text = readFileSync(path, 'utf8');
          for (const m of text.matchAll(/process\.env(?:\.|\[')(HERALD_\w+)/g)) read.add(m[1]!);
          for (const m of text.matchAll(/\$\{(HERALD_\w+):?-/g)) read.add(m[1]!);
        }
      }
    };
    walk(join(REPO_ROOT, 'packages'));
    walk(join(REPO_ROOT, '.ci'));
    expect(read.size).toBeGreaterThan(5);
    expect([...read].filter((name) => !keyForEnvName(name) && !Object.hasOwn(NON_CONFIG_VARIABLES, name))).toEqual([]);
  });

  it('herald serve stops on a misspelt variable with exit 2, as on an unknown key in a file', () => {
    const file = tempFile('herald.json', JSON.stringify({ server: { host: '127.0.0.1', port: 0 }, auth: { jwt: { hmacSecret: SECRET } }, api: { keys: [API_KEY] }, engine: { type: 'memory' } }));
    const serve = (args: string[], env: Record<string, string>) =>
      spawnSync(process.execPath, [CLI, 'serve', '--config', file, ...args], { encoding: 'utf8', timeout: 10_000, env: { ...process.env, ...env } });
    const fromEnv = serve([], { HERALD_LIMTS__MAX_CONNECTIONS: '5' });
    expect(fromEnv.signal, `herald serve started: ${fromEnv.stdout}`).toBeNull();
    expect(fromEnv.status).toBe(2);
    expect(fromEnv.stderr).toBe('herald: invalid configuration: HERALD_LIMTS__MAX_CONNECTIONS: not a configuration variable (did you mean HERALD_LIMITS__MAX_CONNECTIONS?)\n');
    const fromFile = serve(['--config', tempFile('typo.json', '{"limts": {"maxConnections": 5}}')], {});
    expect(fromFile.status).toBe(2);
    expect(fromFile.stderr).toBe('herald: invalid configuration: (root): must NOT have additional properties "limts" (did you mean "limits"?)\n');
  });
});

describe('unknown keys in a file', () => {
  it('name the nearest known key at the same level', () => {
    expect(refusal(() => resolveConfig({ limits: { maxConections: 5 } }))).toContain('limits: must NOT have additional properties "maxConections" (did you mean "limits.maxConnections"?)');
    expect(refusal(() => resolveConfig({ colour: 'red' }))).toBe('invalid configuration:\n  - (root): must NOT have additional properties "colour"');
  });
});

describe('"$schema" in a config file', () => {
  it('is accepted at the top level, for editors, and changes nothing', () => {
    const config = resolveConfig(readConfigFile(tempFile('c.json', '{"$schema": "../api/config.schema.json", "server": {"port": 9000}}')));
    expect(config.server.port).toBe(9000);
  });

  it('is in every shipped config file, pointing at the schema', () => {
    const dir = join(SERVER_ROOT, 'configs');
    const files = readdirSync(dir).filter((f) => f.endsWith('.json'));
    expect(files).toEqual(expect.arrayContaining(['default.json', 'dev.json']));
    for (const f of files) {
      const { $schema } = JSON.parse(readFileSync(join(dir, f), 'utf8')) as { $schema?: string };
      expect($schema, f).toBe('../api/config.schema.json');
      expect(existsSync(join(dir, $schema!)), f).toBe(true);
    }
  });

  it('does not open the door to other unknown keys', () => {
    expect(refusal(() => resolveConfig({ $schema: 'x', $schemas: 'y' }))).toContain('(root): must NOT have additional properties "$schemas" (did you mean "$schema"?)');
    expect(refusal(() => resolveConfig({ server: { $schema: 'x' } }))).toContain('server: must NOT have additional properties "$schema"');
  });
});
