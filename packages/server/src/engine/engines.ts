/**
 * What a node runs on: the broker (dispatch + channel history), presence, the per-user inbox and
 * the control plane, all from one backend. The connection code never sees which backend it got; the factory in
 * `index.ts` builds them from `engine.type`.
 */
import type { Broker } from './broker.js';
import type { ControlPlane } from './control.js';
import type { InboxStore } from './inbox.js';
import type { PresenceStore } from './presence.js';
import type { WebhookOutbox, WebhookOutboxLimits } from './webhook-outbox.js';

import type { ChannelPresenceStore } from './channel-presence.js';

export interface Engines {
  broker: Broker;
  presence: PresenceStore;
  /**
   * Channel members and their join/leave events, cluster-wide (channel-presence.ts). Absent when no
   * namespace keeps presence (`presenceConfigured`): the node then keeps an idle one in memory.
   */
  channelPresence?: ChannelPresenceStore;
  /** Its `append` takes the idempotency key of at-least-once user messages, in the broker's window. */
  inbox: InboxStore;
  /** Node-to-node commands and node liveness, over the same backend (control.ts). */
  control: ControlPlane;
  /**
   * Opens the durable webhook outbox on this backend; absent where nothing is durable (memory),
   * so `webhooks` is refused there. Called only when webhooks are configured.
   */
  openWebhookOutbox?: (limits: WebhookOutboxLimits) => Promise<WebhookOutbox>;
  /** Releases what the engines hold beyond their own close() (e.g. the SQLite file). */
  dispose?: () => Promise<void>;
}
