/**
 * The server's typed errors are the protocol's: one `HeraldError` class and one registry of codes
 * (HTTP status, temporary, default message) in @herald/protocol, shared with the client SDK.
 */
export { ERRORS, HeraldError } from '@herald/protocol';
