/**
 * The configuration schema is the one source of the configuration's shape: the committed
 * TypeScript type and configs/default.json are what the generator makes from it today, and the
 * defaults a server starts with are the schema's.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../src/config.js';
import { configKeys, envName, keyForEnvName, schemaDefaults } from '../src/config-schema.js';
import { SERVER_ROOT, serverFile } from './helpers/paths.js';

describe('generated from api/config.schema.json', () => {
  it('the committed config-types.generated.ts and configs/default.json are what gen:config writes', () => {
    const r = spawnSync(process.execPath, ['scripts/gen-config.mjs', '--check'], { cwd: SERVER_ROOT, encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('the defaults a server starts with are configs/default.json', () => {
    const { $schema, ...file } = JSON.parse(readFileSync(serverFile('configs/default.json'), 'utf8')) as Record<string, unknown>;
    expect($schema).toBe('../api/config.schema.json');
    expect(schemaDefaults()).toEqual(file);
    expect(resolveConfig()).toEqual(file);
  });
});

describe('environment names', () => {
  it('are derived from the key path, and map back to it', () => {
    expect(envName(['limits', 'maxConnections'])).toBe('HERALD_LIMITS__MAX_CONNECTIONS');
    expect(envName(['limits', 'ipv6PrefixLength'])).toBe('HERALD_LIMITS__IPV6_PREFIX_LENGTH');
    expect(envName(['rateLimits', 'apiKey', 'requests', 'perSecond'])).toBe('HERALD_RATE_LIMITS__API_KEY__REQUESTS__PER_SECOND');
    for (const { path } of configKeys().filter((k) => k.path.length > 1)) expect(keyForEnvName(envName(path))?.path, envName(path)).toEqual(path);
  });

  it('reach into maps by any key, and nowhere else', () => {
    expect(keyForEnvName('HERALD_CHANNELS__NAMESPACES__CHAT__HISTORY__SIZE')?.path).toEqual(['channels', 'namespaces', 'chat', 'history', 'size']);
    expect(keyForEnvName('HERALD_CHANNELS__NAMESPACES__CHAT__HISTORY__SIZES')).toBeUndefined();
    expect(keyForEnvName('HERALD_LIMITS')).toBeUndefined();
    expect(keyForEnvName('HERALD_LIMITS__MAX_CONNECTIONS__X')).toBeUndefined();
    expect(keyForEnvName('HERALD_LIMITS__maxConnections')).toBeUndefined();
  });
});
