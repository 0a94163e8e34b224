/**
 * burst: every connection subscribed to `--channels` channels (default 10); R times a second the
 * publisher POSTs one /api/v1/publish/batch with one message per channel, so each connection gets
 * n messages in the same tick. `rate` counts batches: deliveries/s = R × n × connections.
 */
import { publishingScenario } from './publishing.js';

export const burst = publishingScenario({
  name: 'burst',
  summary: 'each connection on 10 channels; R batch publishes/s, one message per channel',
  defaults: { connections: 1000, rate: 2, durationS: 10, channelCount: 10 },
  layout: 'all',
});
