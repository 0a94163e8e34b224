/**
 * The admin channels page's presence column: unique users present in each shown channel whose
 * namespace has presence on, read from the presence counters (never by listing members).
 */
import type { HeraldConfig } from '../../config.js';
import { presenceConfigured } from '../../engine/channel-presence.js';
import type { PresenceTracker } from '../../presence-tracker.js';
import type { PresenceCounts } from './routes.js';

/** At most this many channels are counted per page load: each count is one engine read. */
export const MAX_COUNTED_CHANNELS = 200;

/** Undefined when no namespace has presence on (the page then shows no presence column). */
export function presenceCounts(channels: HeraldConfig['channels'], tracker: Pick<PresenceTracker, 'enabled' | 'stats'>): PresenceCounts | undefined {
  if (!presenceConfigured(channels.namespaces)) return undefined;
  return async (names) => {
    const counted = names.filter((n) => tracker.enabled(n)).slice(0, MAX_COUNTED_CHANNELS);
    const counts = await Promise.all(counted.map(async (n) => [n, (await tracker.stats(n)).users] as const));
    return new Map(counts);
  };
}
