/**
 * The two code vocabularies of Herald's wire protocol v1, shared by server and client.
 *
 * Reply errors travel inside `error` frames and HTTP error bodies; their string codes are stable
 * and never reused. Close codes end a WebSocket; the range tells a client what to do next:
 * 4000–4499 (and 1001, 1005, 1006, 1011, 1012, 1013, 1014) mean "reconnect with backoff", 4500–4999 and the
 * remaining 1xxx codes mean "do not reconnect until something changes".
 */

export const PROTOCOL_VERSION = 1;

export const CloseCode = {
  /** Normal closure requested by the client. */
  NORMAL: 1000,
  /** A binary frame arrived; protocol v1 is JSON text only. */
  UNSUPPORTED_DATA: 1003,
  /** A text frame was not valid UTF-8 (sent by the `ws` parser). */
  INVALID_PAYLOAD: 1007,
  /** A frame exceeded `limits.maxMessageBytes` (sent by the `ws` parser). */
  MESSAGE_TOO_BIG: 1009,
  /** The node reached `limits.maxConnections` while this connection was authenticating: retry later. */
  TRY_AGAIN_LATER: 1013,
  /** The server is shutting down or restarting: reconnect, possibly to another node. */
  SHUTDOWN: 4001,
  /** No pong arrived in time: the server considers the peer dead. */
  HEARTBEAT_TIMEOUT: 4002,
  /** The outgoing queue passed its byte budget: reconnect and recover from history. */
  SLOW_CONSUMER: 4003,
  /** An internal server error ended the connection. */
  SERVER_ERROR: 4004,
  /** An operator asked this connection to reconnect (e.g. to rebalance nodes). */
  FORCE_RECONNECT: 4005,
  /** The connection token expired: refresh it, then reconnect. */
  TOKEN_EXPIRED: 4006,
  /** No `connect` frame arrived within `limits.handshakeTimeoutMs`. */
  CONNECT_TIMEOUT: 4007,
  /** The connect proxy hook's backend was down, too slow or gave an unreadable answer: reconnect later. */
  BACKEND_UNAVAILABLE: 4008,
  /** The token was missing, malformed, badly signed or of a refused algorithm. */
  UNAUTHORIZED: 4501,
  /** An operator disconnected this connection for good. */
  FORCE_DISCONNECT: 4502,
  /** The user already holds `limits.maxConnectionsPerUser` connections. */
  USER_CONNECTION_LIMIT: 4503,
  /** The client broke the protocol: a frame other than `connect` first, or too many frames before `connected`. */
  PROTOCOL_VIOLATION: 4504,
  /** Too many invalid frames in a row; the client is misbehaving. */
  TOO_MANY_ERRORS: 4505,
  /** The client kept sending past its rate limits after being told to slow down (`rate_limited`). */
  RATE_LIMITED: 4506,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

const RECONNECT_1XXX = new Set([1001, 1005, 1006, 1011, 1012, 1013, 1014]);

/** Whether a client should reconnect after a close with this code. */
export function shouldReconnect(code: number): boolean {
  if (code >= 4000 && code <= 4499) return true;
  if (code >= 4500 && code <= 4999) return false;
  return RECONNECT_1XXX.has(code);
}

/** Stable error codes carried by `error` frames, `response` frames and HTTP error bodies. */
export const ErrorCode = {
  INVALID_JSON: 'invalid_json',
  UNKNOWN_FRAME_TYPE: 'unknown_frame_type',
  INVALID_FRAME: 'invalid_frame',
  INVALID_ENVELOPE: 'invalid_envelope',
  NOT_CONNECTED: 'not_connected',
  ALREADY_CONNECTED: 'already_connected',
  UNAUTHORIZED: 'unauthorized',
  TOKEN_EXPIRED: 'token_expired',
  PERMISSION_DENIED: 'permission_denied',
  INVALID_CHANNEL: 'invalid_channel',
  TOO_MANY_SUBSCRIPTIONS: 'too_many_subscriptions',
  ALREADY_SUBSCRIBED: 'already_subscribed',
  NOT_SUBSCRIBED: 'not_subscribed',
  PRESENCE_NOT_ENABLED: 'presence_not_enabled',
  MESSAGE_TOO_LARGE: 'message_too_large',
  UNKNOWN_METHOD: 'unknown_method',
  REQUEST_TIMEOUT: 'request_timeout',
  CLIENT_TIMEOUT: 'client_timeout',
  INVALID_FILTER: 'invalid_filter',
  BAD_REQUEST: 'bad_request',
  API_KEY_REQUIRED: 'api_key_required',
  INVALID_API_KEY: 'invalid_api_key',
  API_KEY_SCOPE: 'api_key_scope',
  NOT_FOUND: 'not_found',
  CONNECTION_NOT_FOUND: 'connection_not_found',
  WEBHOOKS_DISABLED: 'webhooks_disabled',
  DEAD_LETTER_NOT_FOUND: 'dead_letter_not_found',
  UNSUPPORTED_MEDIA_TYPE: 'unsupported_media_type',
  FORBIDDEN_ORIGIN: 'forbidden_origin',
  TOO_MANY_CONNECTIONS: 'too_many_connections',
  OVERLOADED: 'overloaded',
  BROKER_UNAVAILABLE: 'broker_unavailable',
  SHUTTING_DOWN: 'shutting_down',
  RATE_LIMITED: 'rate_limited',
  BACKEND_UNAVAILABLE: 'backend_unavailable',
  BACKEND_ERROR: 'backend_error',
  SUBSCRIPTION_REVOKED: 'subscription_revoked',
  ADMIN_LOGIN_REQUIRED: 'admin_login_required',
  ADMIN_LOGIN_FAILED: 'admin_login_failed',
  ADMIN_CSRF: 'admin_csrf',
  INTERNAL: 'internal',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];
