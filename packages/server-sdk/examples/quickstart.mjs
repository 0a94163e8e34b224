// Run against a development server (`npm start` at the repository root) after `npm run build`:
//   node packages/server-sdk/examples/quickstart.mjs
import { HeraldError, HeraldServerClient } from '@herald/server';

const herald = new HeraldServerClient({
  url: process.env.HERALD_URL ?? 'http://localhost:8080',
  apiKey: process.env.HERALD_API_KEY ?? 'dev-api-key',
  retries: { attempts: 5, initialDelayMs: 200, maxDelayMs: 5_000 },
});

// A msgId of your own makes the publish idempotent across your process restarts too;
// without one the SDK generates a UUID, so its own retries never deliver twice.
const created = await herald.publishToChannel('demo:orders', 'order.created', { orderId: 42 }, { msgId: 'order-42-created' });
console.log(`published ${created.msgId} at offset ${created.position?.offset}`);

const again = await herald.publishToChannel('demo:orders', 'order.created', { orderId: 42 }, { msgId: 'order-42-created' });
console.log(`published again: duplicate=${again.duplicate}`);

// One request, delivered in order; each item succeeds or fails on its own.
const results = await herald.publishBatch([
  { channel: 'demo:orders', eventType: 'order.paid', payload: { orderId: 42 } },
  { user: 'alice', eventType: 'notice', payload: { text: 'your order is paid' }, delivery: 'at-least-once' },
  { broadcast: true, filter: { tag: 'plan', op: 'eq', value: 'pro' }, eventType: 'promo', payload: {} },
]);
console.log(`batch: ${results.filter((r) => r.ok).length} of ${results.length} published`);

try {
  await herald.publishToChannel('not a channel', 'x', {});
} catch (err) {
  if (!(err instanceof HeraldError)) throw err;
  console.log(`refused: ${err.code} (temporary=${err.temporary})`);
}

const stats = await herald.stats();
console.log(`node ${stats.node}: ${stats.connections} connections`);
