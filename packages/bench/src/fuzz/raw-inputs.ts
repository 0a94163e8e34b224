/**
 * Inputs written as raw bytes on a fresh TCP connection: WebSocket upgrade requests that are
 * wrong in one way each, and HTTP requests whose framing is broken (a Content-Length that lies,
 * bad chunk sizes, both framings at once, oversized headers) — what `http.request` refuses to send.
 */
import { FUZZ_API_KEY } from './world.js';
import { textFrame, upgradeRequest } from './ws-framer.js';
import type { Rng } from './rng.js';

export interface RawInput {
  label: string;
  bytes: Buffer;
  /** Whether the answer is an upgrade (101 then WebSocket) or a plain HTTP response. */
  kind: 'upgrade' | 'http';
}

export function rawCatalogue(host: string, tokens: { valid: string; bad: string[] }, rng: Rng): RawInput[] {
  const up = (label: string, opts: Parameters<typeof upgradeRequest>[1]): RawInput => ({ label: `upgrade:${label}`, bytes: Buffer.from(upgradeRequest(host, opts), 'latin1'), kind: 'upgrade' });
  const publish = '{"channel":"fuzz:a","eventType":"raw","payload":1}';
  const head = (extra: string[]) => [`POST /api/v1/publish HTTP/1.1`, `Host: ${host}`, `Authorization: Bearer ${FUZZ_API_KEY}`, 'Content-Type: application/json', 'Connection: close', ...extra].join('\r\n');
  const badUtf8Body = Buffer.concat([Buffer.from('{"channel":"fuzz:a","eventType":"raw","payload":"'), Buffer.from([0xed, 0xa0, 0x80, 0x22, 0x7d])]);
  const raw = (label: string, text: string | Buffer): RawInput => ({ label: `raw-http:${label}`, bytes: typeof text === 'string' ? Buffer.from(text, 'latin1') : text, kind: 'http' });
  return [
    up('valid', {}),
    up('no-key', { key: null }),
    up('bad-key', { key: 'not-base64!' }),
    up('version-8', { version: '8' }),
    up('no-version', { version: null }),
    up('no-upgrade-header', { upgrade: null }),
    up('upgrade-h2c', { upgrade: 'h2c' }),
    up('path-wsx', { path: '/wsx' }),
    up('path-long', { path: `/ws?${'q'.repeat(20_000)}` }),
    up('token-valid-in-url', { path: `/ws?token=${tokens.valid}` }),
    up('token-bad-in-url', { path: `/ws?token=${encodeURIComponent(rng.pick(tokens.bad))}` }),
    up('token-twice-in-url', { path: `/ws?token=a&token=${tokens.valid}` }),
    up('origin-evil', { extraHeaders: ['Origin: http://evil.example'] }),
    up('origin-garbage', { extraHeaders: ['Origin: ::::'] }),
    up('forwarded-for', { extraHeaders: ['X-Forwarded-For: 1.2.3.4, 5.6.7.8'] }),
    up('protocol-list', { extraHeaders: [`Sec-WebSocket-Protocol: ${'p,'.repeat(500)}p`] }),
    up('deflate-offer', { extraHeaders: ['Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits'] }),
    up('huge-header', { extraHeaders: [`X-Big: ${'b'.repeat(20_000)}`] }),
    up('many-headers', { extraHeaders: Array.from({ length: 300 }, (_, i) => `X-H${i}: ${i}`) }),
    {
      label: 'upgrade:frames-behind-upgrade',
      bytes: Buffer.concat([Buffer.from(upgradeRequest(host, {}), 'latin1'), textFrame('{"type":"connect","id":1}'), textFrame('{"type":"ping"}'), textFrame('{"type":"subscribe","id":2,"channel":"fuzz:a"}')]),
      kind: 'upgrade',
    },
    raw('length-short', `${head([`Content-Length: ${publish.length + 20}`])}\r\n\r\n${publish}`),
    raw('length-long', `${head([`Content-Length: 5`])}\r\n\r\n${publish}`),
    raw('length-negative', `${head(['Content-Length: -1'])}\r\n\r\n${publish}`),
    raw('length-twice', `${head([`Content-Length: ${publish.length}`, 'Content-Length: 3'])}\r\n\r\n${publish}`),
    raw('length-and-chunked', `${head([`Content-Length: ${publish.length}`, 'Transfer-Encoding: chunked'])}\r\n\r\n${publish.length.toString(16)}\r\n${publish}\r\n0\r\n\r\n`),
    raw('bad-chunk-size', `${head(['Transfer-Encoding: chunked'])}\r\n\r\nzz\r\n${publish}\r\n0\r\n\r\n`),
    raw('chunk-extension', `${head(['Transfer-Encoding: chunked'])}\r\n\r\n${publish.length.toString(16)};${'e'.repeat(5000)}\r\n${publish}\r\n0\r\n\r\n`),
    raw('chunked-unterminated', `${head(['Transfer-Encoding: chunked'])}\r\n\r\n${publish.length.toString(16)}\r\n${publish}\r\n`),
    raw('header-nul', `${head([`Content-Length: ${publish.length}`, 'X-Nul: a\u0000b'])}\r\n\r\n${publish}`),
    raw('header-obs-fold', `${head([`Content-Length: ${publish.length}`, 'X-Fold: a', ' b'])}\r\n\r\n${publish}`),
    raw('http-1.0', `POST /api/v1/publish HTTP/1.0\r\nAuthorization: Bearer ${FUZZ_API_KEY}\r\nContent-Type: application/json\r\nContent-Length: ${publish.length}\r\n\r\n${publish}`),
    raw('bad-request-line', 'GARBAGE\r\n\r\n'),
    raw('bad-utf8-body-fast-path', Buffer.concat([Buffer.from(`${head([`Content-Length: ${badUtf8Body.length}`])}\r\n\r\n`, 'latin1'), badUtf8Body])),
    raw('pipelined-two', `POST /api/v1/publish HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${FUZZ_API_KEY}\r\nContent-Type: application/json\r\nContent-Length: ${publish.length}\r\n\r\n${publish}${head([`Content-Length: ${publish.length}`])}\r\n\r\n${publish}`),
  ];
}

export function randomRawInput(rng: Rng, host: string, tokens: { valid: string; bad: string[] }): RawInput {
  return rng.pick(rawCatalogue(host, tokens, rng));
}
