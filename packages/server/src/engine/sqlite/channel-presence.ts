/**
 * Channel presence in SQLite. Each change — a join, a leave, a sweep's claim of a lapsed
 * incarnation's members — is one immediate transaction, and its events go to the watchers right
 * after it commits, before any other change can run (better-sqlite3 is synchronous): the events'
 * order is the commit order. Counters (`cp_counts`, `cp_users`) change in the same transactions,
 * so `stats` reads one row.
 *
 * The SQLite engine is one process, so the database given is the engine's own presence database,
 * in memory: presence is rebuilt by its node after a restart, and writing it to the durable file
 * would cost a sync per join for nothing.
 */
import type Database from 'better-sqlite3';
import {
  every,
  MAX_PRESENCE_PAGE,
  newIncarnation,
  type ChannelMember,
  type ChannelPresence,
  type ChannelPresenceStore,
  type ChannelPresenceTiming,
  type PresenceEvent,
  type PresenceListener,
  type PresencePage,
  type PresenceStats,
  OwnMembers,
} from '../channel-presence.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS cp_members (channel TEXT NOT NULL, client TEXT NOT NULL, user TEXT NOT NULL, inc TEXT NOT NULL, member TEXT NOT NULL,
  PRIMARY KEY (channel, client)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS cp_members_inc ON cp_members (inc);
CREATE TABLE IF NOT EXISTS cp_users (channel TEXT NOT NULL, user TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (channel, user)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cp_counts (channel TEXT PRIMARY KEY, connections INTEGER NOT NULL, users INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cp_live (inc TEXT PRIMARY KEY, expires_at INTEGER NOT NULL) WITHOUT ROWID;
`;

type Row = { channel: string; client: string; user: string; inc: string; member: string };

export class SqliteChannelPresenceStore implements ChannelPresenceStore {
  private readonly listeners = new Map<string, Set<PresenceListener>>();
  private readonly handles = new Set<SqliteChannelPresence>();
  private readonly st;

  constructor(
    readonly db: Database.Database,
    readonly timing: ChannelPresenceTiming,
    readonly onError: (err: Error) => void = () => undefined,
  ) {
    db.exec(SCHEMA);
    this.st = {
      get: db.prepare<[string, string], Row>('SELECT * FROM cp_members WHERE channel = ? AND client = ?'),
      insert: db.prepare('INSERT INTO cp_members (channel, client, user, inc, member) VALUES (?, ?, ?, ?, ?)'),
      move: db.prepare('UPDATE cp_members SET inc = ?, member = ? WHERE channel = ? AND client = ?'),
      remove: db.prepare('DELETE FROM cp_members WHERE channel = ? AND client = ?'),
      byInc: db.prepare<[string], Row>('SELECT * FROM cp_members WHERE inc = ?'),
      userUp: db.prepare('INSERT INTO cp_users (channel, user, n) VALUES (?, ?, 1) ON CONFLICT (channel, user) DO UPDATE SET n = n + 1 RETURNING n'),
      userDown: db.prepare('UPDATE cp_users SET n = n - 1 WHERE channel = ? AND user = ? RETURNING n'),
      userGone: db.prepare('DELETE FROM cp_users WHERE channel = ? AND user = ? AND n <= 0'),
      count: db.prepare(
        'INSERT INTO cp_counts (channel, connections, users) VALUES (?, ?, ?) ON CONFLICT (channel) DO UPDATE SET connections = connections + excluded.connections, users = users + excluded.users',
      ),
      countGone: db.prepare('DELETE FROM cp_counts WHERE channel = ? AND connections <= 0'),
      stats: db.prepare<[string], { connections: number; users: number }>('SELECT connections, users FROM cp_counts WHERE channel = ?'),
      page: db.prepare<[string, string, number], Row>('SELECT * FROM cp_members WHERE channel = ? AND client > ? ORDER BY client LIMIT ?'),
      beat: db.prepare('UPDATE cp_live SET expires_at = ? WHERE inc = ? AND expires_at > ?'),
      hello: db.prepare('INSERT OR REPLACE INTO cp_live (inc, expires_at) VALUES (?, ?)'),
      lapsed: db.prepare<[number], { inc: string }>('SELECT DISTINCT m.inc AS inc FROM cp_members m LEFT JOIN cp_live l ON l.inc = m.inc WHERE l.expires_at IS NULL OR l.expires_at <= ?'),
      lapsedLive: db.prepare('DELETE FROM cp_live WHERE expires_at <= ?'),
      forget: db.prepare('DELETE FROM cp_live WHERE inc = ?'),
    };
  }

  async open(node: string, onChange: PresenceListener = () => undefined): Promise<ChannelPresence> {
    const h = new SqliteChannelPresence(this, node, onChange);
    this.handles.add(h);
    return h;
  }

  async close(): Promise<void> {
    for (const h of [...this.handles]) await h.close();
  }

  forget(h: SqliteChannelPresence, inc: string): void {
    this.handles.delete(h);
    this.st.forget.run(inc);
  }

  /** Runs `fn` in one immediate transaction, then delivers the events it produced (to `tell` too: the writer's). */
  private change<T>(tell: PresenceListener, fn: (events: PresenceEvent[]) => T): T {
    const events: PresenceEvent[] = [];
    const result = this.db.transaction(() => fn(events)).immediate();
    for (const e of events) {
      tell(e);
      for (const l of [...(this.listeners.get(e.channel) ?? [])]) {
        try {
          l(e);
        } catch (err) {
          this.onError(err as Error);
        }
      }
    }
    return result;
  }

  beat(inc: string, fresh: boolean): boolean {
    const now = Date.now();
    const until = now + this.timing.nodeTtlMs;
    if (fresh) {
      this.st.hello.run(inc, until);
      return true;
    }
    return this.st.beat.run(until, inc, now).changes === 1;
  }

  join(channel: string, member: ChannelMember, inc: string, tell: PresenceListener): boolean {
    return this.change(tell, (events) => {
      const json = JSON.stringify(member);
      if (this.st.get.get(channel, member.client)) return false;
      this.st.insert.run(channel, member.client, member.user, inc, json);
      const n = (this.st.userUp.get(channel, member.user) as { n: number }).n;
      this.st.count.run(channel, 1, n === 1 ? 1 : 0);
      events.push({ channel, type: 'join', member });
      return true;
    });
  }

  leave(channel: string, client: string, inc: string, tell: PresenceListener): boolean {
    return this.change(tell, (events) => this.removeRow(this.st.get.get(channel, client), inc, events));
  }

  /** Removes every member of an incarnation: one transaction, so racing sweepers claim each once. */
  leaveAll(inc: string, tell: PresenceListener): number {
    return this.change(tell, (events) => {
      let n = 0;
      for (const row of this.st.byInc.all(inc)) n += this.removeRow(row, inc, events) ? 1 : 0;
      return n;
    });
  }

  sweep(own: string, tell: PresenceListener): number {
    const now = Date.now();
    let n = 0;
    for (const { inc } of this.st.lapsed.all(now)) if (inc !== own) n += this.leaveAll(inc, tell);
    this.st.lapsedLive.run(now);
    return n;
  }

  list(channel: string, cursor: string | undefined, limit: number): PresencePage {
    const n = Math.max(1, Math.min(limit, MAX_PRESENCE_PAGE));
    const rows = this.st.page.all(channel, cursor ?? '', n + 1);
    const members = rows.slice(0, n).map((r) => JSON.parse(r.member) as ChannelMember);
    return rows.length > n ? { members, next: members[members.length - 1]!.client } : { members };
  }

  stats(channel: string): PresenceStats {
    return this.st.stats.get(channel) ?? { connections: 0, users: 0 };
  }

  watch(channel: string, listener: PresenceListener): () => void {
    let set = this.listeners.get(channel);
    if (!set) this.listeners.set(channel, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.listeners.get(channel) === set) this.listeners.delete(channel);
    };
  }

  private removeRow(row: Row | undefined, inc: string, events: PresenceEvent[]): boolean {
    if (!row || row.inc !== inc) return false;
    this.st.remove.run(row.channel, row.client);
    const left = this.st.userDown.get(row.channel, row.user) as { n: number } | undefined;
    this.st.userGone.run(row.channel, row.user);
    this.st.count.run(row.channel, -1, left && left.n <= 0 ? -1 : 0);
    this.st.countGone.run(row.channel);
    events.push({ channel: row.channel, type: 'leave', member: JSON.parse(row.member) as ChannelMember });
    return true;
  }
}

class SqliteChannelPresence implements ChannelPresence {
  private inc: string;
  private readonly own = new OwnMembers();
  private stops: Array<() => void> = [];
  private closed = false;

  constructor(
    private readonly s: SqliteChannelPresenceStore,
    readonly node: string,
    private readonly onChange: PresenceListener,
  ) {
    this.inc = newIncarnation(node);
    s.beat(this.inc, true);
    this.stops.push(every(s.timing.heartbeatMs, async () => this.refresh(), s.onError));
    this.stops.push(every(s.timing.heartbeatMs, () => this.sweep(), s.onError));
  }

  async join(channel: string, m: Omit<ChannelMember, 'node'>): Promise<boolean> {
    if (this.closed) return false;
    const member: ChannelMember = { ...m, node: this.node };
    this.own.add(channel, member);
    return this.s.join(channel, member, this.inc, this.onChange);
  }

  async leave(channel: string, client: string): Promise<boolean> {
    this.own.remove(channel, client);
    return this.s.leave(channel, client, this.inc, this.onChange);
  }

  async list(channel: string, page: { cursor?: string; limit: number }): Promise<PresencePage> {
    return this.s.list(channel, page.cursor, page.limit);
  }

  async stats(channel: string): Promise<PresenceStats> {
    return this.s.stats(channel);
  }

  async watch(channel: string, listener: PresenceListener): Promise<() => Promise<void>> {
    const stop = this.s.watch(channel, listener);
    return async () => stop();
  }

  async sweep(): Promise<number> {
    return this.closed ? 0 : this.s.sweep(this.inc, this.onChange);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.stopTimers();
    this.own.clear();
    if (this.s.db.open) {
      this.s.leaveAll(this.inc, this.onChange);
      this.s.forget(this, this.inc);
    }
  }

  async crash(): Promise<void> {
    this.stopTimers();
  }

  private refresh(): void {
    if (this.s.beat(this.inc, false)) return;
    this.s.leaveAll(this.inc, this.onChange);
    this.inc = newIncarnation(this.node);
    this.s.beat(this.inc, true);
    for (const [channel, m] of this.own.all()) this.s.join(channel, m, this.inc, this.onChange);
  }

  private stopTimers(): void {
    this.closed = true;
    for (const s of this.stops.splice(0)) s();
  }
}
