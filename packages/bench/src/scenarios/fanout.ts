/**
 * fanout: N connections subscribe to one channel; the publisher posts R messages per second over
 * HTTP for the duration; every delivery's publish-to-receive latency is recorded.
 */
import { publishingScenario } from './publishing.js';

export const fanout = publishingScenario({
  name: 'fanout',
  summary: 'N subscribers on one channel, R publishes/s over HTTP',
  defaults: { connections: 1000, rate: 20, durationS: 10 },
  layout: 'single',
});
