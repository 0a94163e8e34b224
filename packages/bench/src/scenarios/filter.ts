/**
 * filter: tag-filtered broadcasts. Each connection's token carries tags {region, plan, app}
 * (loadgen/audience.ts: region from 4, plan from 3, app version from 4); the publisher sends R
 * broadcasts/s, cycling through four filters (region eq, region in, plan in + app vgte, region eq
 * + not plan). Each connection works out from its own tags which publishes are its, so a missing
 * one counts as lost and a foreign one as `unexpected`.
 */
import { publishingScenario } from './publishing.js';

export const filter = publishingScenario({
  name: 'filter',
  summary: 'tag-filtered broadcasts (region/plan/app version tags), R publishes/s over 4 filters',
  defaults: { connections: 1000, rate: 20, durationS: 10 },
  heraldOnly: 'the peers have no tag filters',
  layout: 'filter',
});
