/** Presence for a single node: the registry is the truth, nothing expires. */
import type { ConnectionInfo, PresenceStore } from '../presence.js';

export class MemoryPresence implements PresenceStore {
  private readonly byUser = new Map<string, Map<string, ConnectionInfo>>();

  async add(info: ConnectionInfo): Promise<void> {
    let m = this.byUser.get(info.user);
    if (!m) {
      m = new Map();
      this.byUser.set(info.user, m);
    }
    m.set(info.connectionId, info);
  }

  async remove(connectionId: string, user: string): Promise<void> {
    const m = this.byUser.get(user);
    if (!m) return;
    m.delete(connectionId);
    if (m.size === 0) this.byUser.delete(user);
  }

  async userConnections(user: string): Promise<ConnectionInfo[]> {
    return [...(this.byUser.get(user)?.values() ?? [])];
  }

  async close(): Promise<void> {}
}
