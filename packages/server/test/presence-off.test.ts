/**
 * Without a namespace that keeps presence, a node on Redis opens no presence store: no liveness
 * record is written (`<prefix>:cpincs` stays absent), where a node with one writes it at start.
 */
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { dropRedisKeys, REDIS_URL, requireRedis, uniquePrefix } from './engine/services.js';
import { startTestServer } from './helpers/server.js';

const redisUp = await requireRedis();
const prefixes: string[] = [];
afterAll(async () => {
  for (const p of prefixes) await dropRedisKeys(p);
});

describe.skipIf(!redisUp)('presence off on a shared engine', () => {
  it('writes no presence liveness without a presence namespace, and does with one', async () => {
    const redis = new Redis(REDIS_URL);
    try {
      for (const presence of [false, true]) {
        const prefix = uniquePrefix('presence-off');
        prefixes.push(prefix);
        const server = await startTestServer({
          engine: { type: 'redis', redis: { url: REDIS_URL, prefix } },
          ...(presence ? { channels: { namespaces: { room: { presence: true } } } } : {}),
        });
        try {
          expect(await redis.exists(`${prefix}:cpincs`), `presence ${presence}`).toBe(presence ? 1 : 0);
        } finally {
          await server.close();
        }
      }
    } finally {
      redis.disconnect();
    }
  });
});
