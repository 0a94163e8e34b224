/** `engine.redis.mode` and its sections: defaults, environment lists, and start-up errors naming the key. */
import { describe, expect, it } from 'vitest';
import { configFromEnv, ConfigError, resolveConfig } from '../src/config.js';

const redis = (r: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({ engine: { type: 'redis', redis: r }, ...extra });

function problem(...layers: unknown[]): string {
  try {
    resolveConfig(...layers);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('engine.redis.mode', () => {
  it('defaults to standalone on engine.redis.url, with empty sentinel and cluster sections', () => {
    const c = resolveConfig(redis({}));
    expect(c.engine.redis.mode).toBe('standalone');
    expect(c.engine.redis.url).toBe('redis://127.0.0.1:6379');
    expect(c.engine.redis.sentinel).toEqual({ sentinels: [], masterName: '', password: '', sentinelPassword: '', db: 0 });
    expect(c.engine.redis.cluster).toEqual({ nodes: [], password: '' });
  });

  it('accepts a complete sentinel and cluster configuration', () => {
    const s = resolveConfig(redis({ mode: 'sentinel', sentinel: { sentinels: ['10.0.0.1:26379', '[::1]:26380', 'sentinel-2.local:26379'], masterName: 'm', db: 2 } }));
    expect(s.engine.redis.sentinel).toMatchObject({ sentinels: ['10.0.0.1:26379', '[::1]:26380', 'sentinel-2.local:26379'], masterName: 'm', db: 2 });
    const c = resolveConfig(redis({ mode: 'cluster', cluster: { nodes: ['10.0.0.1:7000'], password: 'x' } }));
    expect(c.engine.redis.cluster).toEqual({ nodes: ['10.0.0.1:7000'], password: 'x' });
  });

  it('reads the host lists from comma-separated environment variables', () => {
    expect(configFromEnv({ HERALD_ENGINE__REDIS__SENTINEL__SENTINELS: 'a:1, b:2', HERALD_ENGINE__REDIS__CLUSTER__NODES: 'c:3', HERALD_ENGINE__REDIS__SENTINEL__MASTER_NAME: 'mymaster' })).toEqual({
      engine: { redis: { sentinel: { sentinels: ['a:1', 'b:2'], masterName: 'mymaster' }, cluster: { nodes: ['c:3'] } } },
    });
  });

  it('names the key that is missing or malformed', () => {
    expect(problem(redis({ mode: 'replicated' }))).toMatch(/engine\.redis\.mode: .*one of \["standalone","sentinel","cluster"\]/);
    expect(problem(redis({ mode: 'sentinel', sentinel: { masterName: 'm' } }))).toMatch(/^engine\.redis\.sentinel\.sentinels: engine\.redis\.mode "sentinel" needs at least one "host:port"/);
    expect(problem(redis({ mode: 'sentinel', sentinel: { sentinels: ['10.0.0.1'], masterName: 'm' } }))).toMatch(/^engine\.redis\.sentinel\.sentinels: "10\.0\.0\.1" is not "host:port"/);
    expect(problem(redis({ mode: 'sentinel', sentinel: { sentinels: ['h:70000'], masterName: 'm' } }))).toMatch(/^engine\.redis\.sentinel\.sentinels: "h:70000"/);
    expect(problem(redis({ mode: 'sentinel', sentinel: { sentinels: ['h:1'] } }))).toMatch(/^engine\.redis\.sentinel\.masterName: /);
    expect(problem(redis({ mode: 'sentinel', sentinel: { sentinels: ['h:1'], masterName: 'm', db: -1 } }))).toMatch(/engine\.redis\.sentinel\.db: must be >= 0/);
    expect(problem(redis({ mode: 'cluster' }))).toMatch(/^engine\.redis\.cluster\.nodes: engine\.redis\.mode "cluster" needs at least one/);
    expect(problem(redis({ mode: 'cluster', cluster: { nodes: ['h:1'] }, prefix: 'app{1}' }))).toMatch(/^engine\.redis\.prefix: must not contain "\{" or "\}"/);
    expect(problem(redis({ mode: 'cluster', cluster: { nodes: ['h:1'] } }, { ingest: { redisStreams: [{ stream: 's' }] } }))).toMatch(/^ingest\.redisStreams\[0\]\.url: required with engine\.redis\.mode "cluster"/);
  });

  it('checks the redis sections only when the redis engine is used', () => {
    expect(resolveConfig({ engine: { type: 'memory', redis: { mode: 'cluster' } } }).engine.redis.mode).toBe('cluster');
  });
});
