/** Per-user inboxes in process memory: lost on restart, for tests and the explicit memory mode. */
import type { AppendResult, InboxEntry, InboxLimits, InboxStore } from '../inbox.js';
import type { Envelope } from '@herald/protocol';
import { windowId, type IdempotencyKey } from '../idempotency.js';
import { IdempotencyWindow } from './idempotency.js';

interface UserInbox {
  nextSeq: number;
  entries: InboxEntry[];
}

export class MemoryInbox implements InboxStore {
  private readonly users = new Map<string, UserInbox>();

  /** `window`: the idempotency window, shared with the memory broker (default: one of its own, with the configuration's defaults). */
  constructor(private readonly window: IdempotencyWindow = new IdempotencyWindow(120_000, 1_000_000)) {}

  async append(user: string, entry: { envelope: Envelope; channel?: string }, limits: InboxLimits, key?: IdempotencyKey): Promise<AppendResult> {
    const id = key && this.window.enabled ? windowId({ kind: 'user', user }, key) : undefined;
    if (id !== undefined) {
      const earlier = this.window.get(id);
      if (earlier) return { seq: 0, duplicate: true, dropped: 0, earlier: { timestamp: earlier.timestamp } };
      this.window.set(id, { timestamp: entry.envelope.timestamp });
    }
    let box = this.users.get(user);
    if (!box) this.users.set(user, (box = { nextSeq: 1, entries: [] }));
    const existing = box.entries.find((e) => e.envelope.msgId === entry.envelope.msgId);
    if (existing) return { seq: existing.seq, duplicate: true, dropped: 0 };
    const seq = box.nextSeq++;
    box.entries.push({ seq, envelope: entry.envelope, ...(entry.channel ? { channel: entry.channel } : {}), storedAt: Date.now() });
    return { seq, duplicate: false, dropped: prune(box, limits) };
  }

  async list(user: string, afterSeq: number, limit: number, limits: InboxLimits): Promise<{ entries: InboxEntry[]; dropped: number }> {
    const box = this.users.get(user);
    if (!box) return { entries: [], dropped: 0 };
    const dropped = prune(box, limits);
    return { entries: box.entries.filter((e) => e.seq > afterSeq).slice(0, limit), dropped };
  }

  async remove(user: string, msgIds: string[]): Promise<string[]> {
    const box = this.users.get(user);
    if (!box) return [];
    const ids = new Set(msgIds);
    const removed: string[] = [];
    box.entries = box.entries.filter((e) => {
      if (!ids.has(e.envelope.msgId)) return true;
      removed.push(e.envelope.msgId);
      return false;
    });
    return removed;
  }

  async size(user: string): Promise<number> {
    return this.users.get(user)?.entries.length ?? 0;
  }

  async close(): Promise<void> {}
}

function prune(box: UserInbox, limits: InboxLimits): number {
  const before = box.entries.length;
  const cutoff = Date.now() - limits.maxAgeMs;
  box.entries = box.entries.filter((e) => e.storedAt >= cutoff);
  if (box.entries.length > limits.maxMessages) box.entries = box.entries.slice(box.entries.length - limits.maxMessages);
  return before - box.entries.length;
}
