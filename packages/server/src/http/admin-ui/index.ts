/**
 * Wiring of the admin UI (only when `admin.ui.enabled`): the sampler, whose per-second figures this
 * node also reports in its `stats` answer so other nodes' UIs can sum them, and the routes, each
 * given the part of the node it uses.
 */
import type { FastifyInstance } from 'fastify';
import type { HeraldConfig } from '../../config.js';
import type { HeraldNode } from '../../node.js';
import { presenceCounts } from './presence-counts.js';
import { adminUiRoutes } from './routes.js';
import { AdminSampler } from './sampler.js';

/** The parts of the node the admin UI reads and acts on. */
export type AdminUiNode = Pick<HeraldNode, 'name' | 'metrics' | 'admin' | 'publishing' | 'delivery' | 'inbox' | 'channelPresence'>;

export async function adminUi(app: FastifyInstance, o: { config: Readonly<HeraldConfig>; node: AdminUiNode }): Promise<void> {
  const { config, node } = o;
  const sampler = new AdminSampler({ metrics: node.metrics, clusterStats: () => node.admin.stats(), historySeconds: config.admin.ui.historySeconds });
  const removeSource = node.admin.addStatsSource(() => ({ ...sampler.localFields() }));
  sampler.start();
  app.addHook('onClose', async () => {
    sampler.stop();
    removeSource();
  });
  await app.register(adminUiRoutes, {
    config,
    nodeName: node.name,
    admin: node.admin,
    publishing: node.publishing,
    receipts: node.delivery.receipts,
    inbox: node.inbox,
    sampler,
    presenceCounts: presenceCounts(config.channels, node.channelPresence),
    log: app.log,
  });
}
