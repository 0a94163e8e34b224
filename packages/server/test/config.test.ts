import { describe, expect, it } from 'vitest';
import { configFromAssignments, configFromEnv, ConfigError, resolveConfig } from '../src/config.js';

describe('configuration', () => {
  it('has safe production defaults', () => {
    const c = resolveConfig();
    expect(c.origins.allowed).toEqual([]); // same-origin only
    expect(c.auth.anonymous).toBe(false);
    expect(c.limits.maxMessageBytes).toBe(65536);
    expect(c.limits.maxQueueBytes).toBe(1048576);
    expect(c.limits.maxSubscriptionsPerConnection).toBe(128);
    expect(c.heartbeat).toEqual({ intervalMs: 25000, pongTimeoutMs: 10000, maxMissed: 1 });
    expect(Object.isFrozen(c.limits)).toBe(true);
  });

  it('maps HERALD_* variables to nested keys', () => {
    expect(configFromEnv({ HERALD_LIMITS__MAX_CONNECTIONS: '5000', HERALD_API__KEYS: 'a-long-key-1,a-long-key-2', HERALD_AUTH__ANONYMOUS: 'true', PATH: '/bin' })).toEqual({
      limits: { maxConnections: 5000 },
      api: { keys: ['a-long-key-1', 'a-long-key-2'] },
      auth: { anonymous: true },
    });
    expect(configFromAssignments(['heartbeat.maxMissed=3', 'origins.allowed=https://a.example,https://b.example'])).toEqual({
      heartbeat: { maxMissed: 3 },
      origins: { allowed: ['https://a.example', 'https://b.example'] },
    });
  });

  it('layers later sources over earlier ones', () => {
    const c = resolveConfig({ heartbeat: { intervalMs: 30000 } }, { heartbeat: { maxMissed: 3 } });
    expect(c.heartbeat).toEqual({ intervalMs: 30000, pongTimeoutMs: 10000, maxMissed: 3 });
  });

  it.each([
    [{ server: { port: 70000 } }, 'server.port'],
    [{ limits: { overload: { mode: 'panic' } } }, 'limits.overload.mode'],
    [{ heartbeat: { intervalMs: 1000, pongTimeoutMs: 2000 } }, 'heartbeat.pongTimeoutMs'],
    [{ auth: { jwt: { hmacSecret: 'short' } } }, 'auth.jwt.hmacSecret'],
    [{ api: { keys: ['x'] } }, 'api.keys.0'],
    [{ nonsense: true }, 'nonsense'],
  ])('refuses %j naming %s', (layer, key) => {
    expect(() => resolveConfig(layer)).toThrow(ConfigError);
    expect(() => resolveConfig(layer)).toThrow(key);
  });
});
