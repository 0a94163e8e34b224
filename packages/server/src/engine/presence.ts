/**
 * Who is connected: per channel and per user, across every node. Entries belong to a node and
 * expire unless that node refreshes them, so a crashed node's connections disappear on their own.
 */
import type { ConnectionInfo } from '@herald/protocol';

export type { ConnectionInfo };

export interface PresenceStore {
  /** Records or refreshes a connection. */
  add(info: ConnectionInfo): Promise<void>;
  remove(connectionId: string, user: string): Promise<void>;
  /** Every live connection of a user, on any node. */
  userConnections(user: string): Promise<ConnectionInfo[]>;
  close(): Promise<void>;
}
