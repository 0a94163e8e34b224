/**
 * @herald/server — a typed SDK for Node backends that talk to Herald's HTTP API.
 * This file is the whole public surface; everything else is internal.
 */
export { HeraldServerClient, DEFAULT_CLIENT_REQUEST_TIMEOUT_MS } from './client.js';
export { HeraldError, ServerSdkErrorCode, ErrorCode } from './errors.js';
export type { ErrorOrigin, HeraldErrorCode } from './errors.js';
export type { FetchLike, HeraldServerClientOptions, RetryOptions } from './options.js';
export type {
  Audience,
  BatchItemResult,
  ChannelInfo,
  ChannelMemberInfo,
  ChannelPresencePage,
  ChannelPresenceStats,
  ConnectionInfo,
  DeliveryMode,
  DisconnectOptions,
  NodeStats,
  ClusterStats,
  NodeInfo,
  NodesAnswered,
  PublishFields,
  PublishMessage,
  PublishOptions,
  PublishResult,
  Receipt,
  ReceiptState,
  RecipientRecord,
} from './types.js';
export { CloseCode } from '@herald/protocol';
export type { ErrorBody, StreamPosition, TagFilter, TagCondition, TagOp, Tags, TagValue } from '@herald/protocol';
