/** Builds the engines named by `engine.type`. The connection code never sees which it got. */
import type { FastifyBaseLogger } from 'fastify';
import { ConfigError, type HeraldConfig } from '../config.js';
import type { Engines } from './engines.js';
import { createMemoryEngines } from './memory/index.js';
import { createSqliteEngines } from './sqlite/index.js';

export type { Engines } from './engines.js';

export async function createEngines(config: Readonly<HeraldConfig>, nodeName: string, log: FastifyBaseLogger): Promise<Engines> {
  switch (config.engine.type) {
    case 'memory':
      return createMemoryEngines(config);
    case 'sqlite':
      return createSqliteEngines(config);
    // The cluster engines load their clients (ioredis, nats) only when chosen, so the embedded
    // default does not carry them.
    case 'redis':
      return (await import('./redis/index.js')).createRedisEngines(config, nodeName, log);
    case 'nats':
      return (await import('./nats/index.js')).createNatsEngines(config, log);
    default:
      throw new ConfigError(`engine.type: "${config.engine.type}" is not available in this build`);
  }
}
