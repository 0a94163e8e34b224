/**
 * @herald/client — the Herald WebSocket client for browsers and Node 20.
 * This file is the whole public surface; everything else is internal.
 */
export { HeraldClient } from './client.js';
export type { ClientEvents, ConnectedInfo } from './client.js';
export { Subscription } from './subscription.js';
export type { SubscribedInfo, SubscriptionEvents, SubscriptionState } from './subscription.js';
export type { PresenceMember, PresencePage, PresenceQuery, PresenceStats } from './presence.js';
export { HeraldError, ClientErrorCode, ErrorCode } from './errors.js';
export type { HeraldErrorCode } from './errors.js';
export { createBackoff, DEFAULT_RECONNECT } from './backoff.js';
export type { BackoffPolicy, ReconnectOptions } from './backoff.js';
export type { HeraldClientOptions } from './options.js';
export type { ClientState, ClientStatus } from './state.js';
export type { AckMode, MessageContext } from './delivery.js';
export type { PublishOptions, PublishResult } from './publisher.js';
export type { IncomingRequest, RequestHandler, RequestOptions } from './rpc.js';
export type { OutboxEntry, OutboxStorage } from './outbox.js';
export type { Disposer } from './events.js';
export type { WebSocketConstructor, WebSocketLike } from './transport.js';
export { CloseCode, shouldReconnect, PROTOCOL_VERSION } from '@herald/protocol';
export type { Envelope, StreamPosition, DeliveryTarget, ErrorBody } from '@herald/protocol';
