/**
 * reliable: fanout with `"delivery":"at-least-once"` in every publish; each connection ACKs every
 * delivery that carries `"ack":true` (the ACKs of one socket read in one ack frame). `bench
 * compare --scenario reliable` runs Herald in both modes (`--modes`, default
 * at-least-once,at-most-once) so the ACK path's cost shows as the ratio of the two. A
 * retransmission (an ACK that did not arrive within delivery.ackTimeoutMs) would show as
 * `duplicated`.
 */
import { publishingScenario } from './publishing.js';

export const reliable = publishingScenario({
  name: 'reliable',
  summary: 'fanout, at-least-once: every delivery ACKed (compare: both delivery modes)',
  defaults: { connections: 1000, rate: 20, durationS: 10 },
  delivery: 'at-least-once',
  compareModes: ['at-least-once', 'at-most-once'],
  layout: 'single',
});
