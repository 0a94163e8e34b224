/**
 * The webhook signature: the shared `Herald-Signature` (../signature.ts) over `<t>.<body>`, the
 * webhook domain being empty so receivers written before hook requests were signed still verify.
 */
export { SIGNATURE_HEADER, signatureHeader, signatureOf, type SigningSecret as WebhookSecret } from '../signature.js';
