/**
 * @herald/server — a typed SDK for Node backends that talk to Herald's HTTP API.
 * This file is the whole public surface; everything else is internal.
 */
export { HeraldServerClient, DEFAULT_CLIENT_REQUEST_TIMEOUT_MS } from './client.js';
export { HeraldError, ServerSdkErrorCode, ErrorCode } from './errors.js';
export type { ErrorOrigin, HeraldErrorCode } from './errors.js';
export type { FetchLike, HeraldServerClientOptions, RetryOptions } from './options.js';
export { answerProxyRequest, parseProxyRequest, proxyAnswer, proxyHandler, verifyProxyRequest } from './proxy.js';
export type {
  AnswerProxyRequestOptions,
  ConnectAnswer,
  ConnectRequest,
  ConnectResult,
  ProxyDisconnect,
  ProxyHandlerOptions,
  ProxyHandlers,
  ProxyHook,
  ProxyRefusal,
  ProxyRequest,
  ProxyRequestBase,
  ProxySecrets,
  ProxySignatureRefusal,
  PublishAnswer,
  PublishRequest,
  RefreshAnswer,
  RefreshRequest,
  RefreshResult,
  RpcAnswer,
  RpcRequest,
  SubscribeAnswer,
  SubscribeRequest,
  VerifyProxyRequestOptions,
  VerifyProxyRequestResult,
} from './proxy.js';
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
export { verifyWebhook } from './webhooks.js';
export type { HeadersLike, VerifyWebhookOptions, VerifyWebhookResult, WebhookRefusal, WebhookSecrets } from './webhooks.js';
export { CloseCode } from '@herald/protocol';
export type { ErrorBody, StreamPosition, TagFilter, TagCondition, TagOp, Tags, TagValue } from '@herald/protocol';
