/** Who a publication is for: one channel's subscribers, one user's connections, or everyone. */
export type DispatchTarget = { kind: 'channel'; channel: string } | { kind: 'user'; user: string } | { kind: 'broadcast' };
