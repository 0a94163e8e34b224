/**
 * Who each loadgen connection is and which publishes it must receive, as pure functions of its
 * global index `g`: the harness (expected deliveries), the publisher (what to address) and the
 * workers (tokens, per-connection seq accounting) compute the same answers without exchanging
 * lists.
 *
 * - users: user u has 1 + (u mod maxDevices) devices, so users with 1, 2, … maxDevices
 *   connections alternate; connection g belongs to `userOfConnection(g)`.
 * - filter: connection g carries tags {region, plan, app} picked from small sets by g; publish i
 *   (1-based) is a broadcast with `FILTER_CASES[(i − 1) mod F].filter`.
 * - storm: connection g is one of the churning ones (dropped and reconnected every round) when
 *   g mod 100 < churn %.
 */

export type BenchTags = { region: string; plan: string; app: string };

export const REGIONS = ['eu', 'us', 'apac', 'latam'] as const;
export const PLANS = ['free', 'pro', 'team'] as const;
export const APP_VERSIONS = ['1.9.0', '2.0.3', '2.10.1', '3.0.0'] as const;

/** Tags of connection g: region cycles fastest, then plan, then app version (48 combinations). */
export function tagsOf(g: number): BenchTags {
  return {
    region: REGIONS[g % REGIONS.length]!,
    plan: PLANS[Math.floor(g / REGIONS.length) % PLANS.length]!,
    app: APP_VERSIONS[Math.floor(g / (REGIONS.length * PLANS.length)) % APP_VERSIONS.length]!,
  };
}

function versionParts(v: string): number[] {
  return v.split('.').map(Number);
}

/** a ≥ b for the plain dotted versions used here. */
function versionAtLeast(a: string, b: string): boolean {
  const x = versionParts(a);
  const y = versionParts(b);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d > 0;
  }
  return true;
}

/**
 * A filter as sent to Herald and the same test written out by hand, so the loadgen knows the
 * audience without a filter engine of its own. Every case has an indexed (`eq`/`in`) term, so
 * Herald resolves it through its tag index; two add a term the index cannot answer (version,
 * plan), which Herald checks on the indexed bucket's connections.
 */
export interface FilterCase {
  filter: Record<string, unknown>;
  matches(tags: BenchTags): boolean;
}

export const FILTER_CASES: readonly FilterCase[] = [
  { filter: { tag: 'region', op: 'eq', value: 'eu' }, matches: (t) => t.region === 'eu' },
  { filter: { tag: 'region', op: 'in', value: ['us', 'apac'] }, matches: (t) => t.region === 'us' || t.region === 'apac' },
  {
    filter: { and: [{ tag: 'plan', op: 'in', value: ['pro', 'team'] }, { tag: 'app', op: 'vgte', value: '2.10.0' }] },
    matches: (t) => (t.plan === 'pro' || t.plan === 'team') && versionAtLeast(t.app, '2.10.0'),
  },
  {
    filter: { and: [{ tag: 'region', op: 'eq', value: 'latam' }, { not: { tag: 'plan', op: 'eq', value: 'free' } }] },
    matches: (t) => t.region === 'latam' && t.plan !== 'free',
  },
];

/**
 * For connection g: its local seq (1, 2, 3… over the publishes it matches) of global publish
 * `seq`, or 0 when publish `seq` is not meant for it. Publish i goes out with filter case
 * (i − 1) mod F, so the matched cases repeat every F publishes.
 */
export function filterSeqMap(g: number): (seq: number) => number {
  const tags = tagsOf(g);
  const F = FILTER_CASES.length;
  const rank: number[] = [];
  let matched = 0;
  for (const c of FILTER_CASES) rank.push(c.matches(tags) ? ++matched : 0);
  return (seq) => {
    const i = seq - 1;
    const r = rank[i % F]!;
    return r === 0 ? 0 : Math.floor(i / F) * matched + r;
  };
}

/** Connections among `connected` (indices 0…connected−1) that filter case f matches. */
export function filterAudience(connected: number, f: number): number {
  const c = FILTER_CASES[f]!;
  let n = 0;
  for (let g = 0; g < connected; g++) if (c.matches(tagsOf(g))) n++;
  return n;
}

/** Devices (connections) of user u. */
export function devicesOf(u: number, maxDevices: number): number {
  return 1 + (u % Math.max(1, maxDevices));
}

/** Users needed for `connections` connections, the last one possibly with fewer devices. */
export function userCount(connections: number, maxDevices: number): number {
  let users = 0;
  for (let left = connections; left > 0; users++) left -= devicesOf(users, maxDevices);
  return users;
}

/** The user index connection g belongs to (users hold consecutive connections). */
export function userOfConnection(g: number, maxDevices: number): number {
  const d = Math.max(1, maxDevices);
  const perCycle = (d * (d + 1)) / 2;
  let u = Math.floor(g / perCycle) * d;
  let left = g % perCycle;
  while (left >= devicesOf(u, d)) left -= devicesOf(u++, d);
  return u;
}

/** Connections of user u among the first `connections` ones. */
export function connectionsOfUser(u: number, connections: number, maxDevices: number): number {
  const d = Math.max(1, maxDevices);
  const perCycle = (d * (d + 1)) / 2;
  let first = Math.floor(u / d) * perCycle;
  for (let v = u - (u % d); v < u; v++) first += devicesOf(v, d);
  return Math.max(0, Math.min(devicesOf(u, d), connections - first));
}

export const userName = (u: number): string => `user-${u}`;

/** Whether connection g is among the `churnPct` % dropped and reconnected every storm round. */
export function churns(g: number, churnPct: number): boolean {
  return g % 100 < churnPct;
}

/**
 * Who connection g is (token `sub` and `tags`) and how it reads seqs, for a worker config's
 * `audience`; the default identity is `user-<g>`, no tags, every publish meant for it.
 */
export type AudienceSpec = { kind: 'users'; maxDevices: number } | { kind: 'filter' } | { kind: 'churn'; churnPct: number };
