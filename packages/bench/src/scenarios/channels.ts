/**
 * channels: many small channels. `--channels` channels (default 200), connection g subscribed to
 * channel g mod n (1000 connections: 5 per channel), publishes spread round robin over the
 * channels at R/s (default 200/s), each channel with its own seq.
 */
import { publishingScenario } from './publishing.js';

export const channels = publishingScenario({
  name: 'channels',
  summary: 'many small channels (200 × 5 subscribers), R publishes/s spread over them',
  defaults: { connections: 1000, rate: 200, durationS: 10, channelCount: 200 },
  layout: 'one',
});
