/**
 * Client addresses behind proxies (issue 11, M7) and the per-IP key (M6): the module agrees with
 * fastify's `req.ip` on every header shape, and groups IPv6 by prefix and IPv4-mapped addresses
 * as IPv4.
 */
import { connect } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientAddress, ipGroupKey, ipv6Groups, trustedHops } from '../src/http/client-ip.js';

describe('ipGroupKey', () => {
  it('keeps IPv4 and folds IPv4-mapped IPv6 into IPv4', () => {
    expect(ipGroupKey('203.0.113.7', 64)).toBe('203.0.113.7');
    expect(ipGroupKey('::ffff:203.0.113.7', 64)).toBe('203.0.113.7');
    expect(ipGroupKey('::FFFF:203.0.113.7', 64)).toBe('203.0.113.7');
    expect(ipGroupKey('::ffff:cb00:7107', 64)).toBe('203.0.113.7');
    expect(ipGroupKey('0:0:0:0:0:ffff:203.0.113.7', 64)).toBe('203.0.113.7');
  });

  it('groups IPv6 by the configured prefix', () => {
    const a = ipGroupKey('2001:db8:0:1::a', 64);
    expect(a).toBe('2001:db8:0:1::/64');
    expect(ipGroupKey('2001:db8:0:1:ffff:ffff:ffff:ffff', 64)).toBe(a);
    expect(ipGroupKey('2001:DB8:0:1:0:0:0:1', 64)).toBe(a);
    expect(ipGroupKey('2001:db8:0:2::a', 64)).not.toBe(a);
    expect(ipGroupKey('2001:db8:1:2ff::1', 56)).toBe('2001:db8:1:200::/56');
    expect(ipGroupKey('2001:db8:1:2ff::1', 48)).toBe('2001:db8:1::/48');
    expect(ipGroupKey('2001:db8::1', 128)).toBe('2001:db8:0:0:0:0:0:1/128');
    expect(ipGroupKey('2001:db8::1', 128)).not.toBe(ipGroupKey('2001:db8::2', 128));
    expect(ipGroupKey('fe80::1%eth0', 64)).toBe('fe80:0:0:0::/64');
    expect(ipGroupKey('::1', 64)).toBe('0:0:0:0::/64');
  });

  it('keeps anything that is not an IP as it is, cut short', () => {
    expect(ipGroupKey('unknown', 64)).toBe('unknown');
    expect(ipGroupKey('x'.repeat(500), 64)).toBe('x'.repeat(64));
    expect(ipGroupKey('1.2.3.4:5678', 64)).toBe('1.2.3.4:5678');
  });

  it('parses every IPv6 spelling into eight groups', () => {
    expect(ipv6Groups('::')).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    expect(ipv6Groups('1::')).toEqual([1, 0, 0, 0, 0, 0, 0, 0]);
    expect(ipv6Groups('1::1.2.3.4')).toEqual([1, 0, 0, 0, 0, 0, 0x102, 0x304]);
    expect(ipv6Groups('::1.2.3.4')).toEqual([0, 0, 0, 0, 0, 0, 0x102, 0x304]);
    expect(ipv6Groups('1:2:3:4:5:6:1.2.3.4')).toEqual([1, 2, 3, 4, 5, 6, 0x102, 0x304]);
    expect(ipv6Groups('1:2:3:4:5:6:7:8')).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(ipv6Groups('1.2.3.4')).toBeUndefined();
    expect(ipv6Groups('1:2:3')).toBeUndefined();
    expect(ipv6Groups('garbage')).toBeUndefined();
  });
});

describe('clientAddress agrees with fastify req.ip', () => {
  const HOPS = [0, 1, 2, 3];
  const apps: Array<{ hops: number; app: FastifyInstance; port: number }> = [];

  beforeAll(async () => {
    for (const hops of HOPS) {
      const app = Fastify({ trustProxy: trustedHops(hops) });
      app.get('/ip', async (req) => ({ fastify: req.ip, ours: clientAddress(req, hops), oursRaw: clientAddress(req.raw, hops) }));
      await app.listen({ host: '127.0.0.1', port: 0 });
      apps.push({ hops, app, port: (app.server.address() as AddressInfo).port });
    }
  });

  afterAll(async () => {
    for (const { app } of apps) await app.close();
  });

  /** Sends a request with exactly these header lines (repeats and odd spacing kept) and returns the JSON answer. */
  function ask(port: number, headerLines: string[]): Promise<{ fastify: string; ours: string; oursRaw: string }> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, '127.0.0.1');
      let text = '';
      socket.on('data', (d) => (text += d.toString('latin1')));
      socket.on('error', reject);
      socket.on('close', () => {
        const body = text.slice(text.indexOf('\r\n\r\n') + 4);
        try {
          resolve(JSON.parse(body) as { fastify: string; ours: string; oursRaw: string });
        } catch {
          reject(new Error(`unexpected answer ${JSON.stringify(text)}`));
        }
      });
      socket.write(['GET /ip HTTP/1.1', 'Host: test', 'Connection: close', ...headerLines, '', ''].join('\r\n'), 'latin1');
    });
  }

  const TABLE: Array<[string, string[]]> = [
    ['no header', []],
    ['one address', ['X-Forwarded-For: 203.0.113.7']],
    ['two addresses', ['X-Forwarded-For: 10.0.0.1, 203.0.113.7']],
    ['three, no spaces', ['X-Forwarded-For: 10.0.0.1,10.0.0.2,203.0.113.7']],
    ['spaces and tabs', ['X-Forwarded-For:   10.0.0.1 ,\t 10.0.0.2\t,   203.0.113.7   ']],
    ['repeated headers', ['X-Forwarded-For: 10.0.0.1', 'X-Forwarded-For: 10.0.0.2, 203.0.113.7']],
    ['three repeated headers', ['X-Forwarded-For: 10.0.0.1', 'X-Forwarded-For: 10.0.0.2', 'X-Forwarded-For: 203.0.113.7']],
    ['IPv6', ['X-Forwarded-For: 2001:db8::1, ::ffff:203.0.113.7']],
    ['IPv6 with brackets and port', ['X-Forwarded-For: [2001:db8::1]:443']],
    ['empty entries', ['X-Forwarded-For: 10.0.0.1,,, 203.0.113.7,']],
    ['only commas', ['X-Forwarded-For: , ,,']],
    ['empty value', ['X-Forwarded-For: ']],
    ['garbage', ['X-Forwarded-For: <script>alert(1)</script>, not-an-ip']],
    ['one garbage entry with spaces', ['X-Forwarded-For:    unknown   ']],
    ['long list', [`X-Forwarded-For: ${Array.from({ length: 40 }, (_, i) => `10.1.${i}.1`).join(', ')}`]],
    ['other forwarding headers only', ['Forwarded: for=198.51.100.1', 'X-Real-IP: 198.51.100.2']],
  ];

  for (const [name, lines] of TABLE) {
    it(`for ${name}`, async () => {
      for (const { hops, port } of apps) {
        const got = await ask(port, lines);
        expect({ hops, ours: got.ours, oursRaw: got.oursRaw }).toEqual({ hops, ours: got.fastify, oursRaw: got.fastify });
      }
    });
  }

  it('takes the address from the right, never the client-written left-most one', async () => {
    const one = apps.find((a) => a.hops === 1)!;
    expect((await ask(one.port, ['X-Forwarded-For: 6.6.6.6, 203.0.113.7'])).ours).toBe('203.0.113.7');
    const two = apps.find((a) => a.hops === 2)!;
    expect((await ask(two.port, ['X-Forwarded-For: 6.6.6.6, 203.0.113.7, 10.0.0.9'])).ours).toBe('203.0.113.7');
    const none = apps.find((a) => a.hops === 0)!;
    expect((await ask(none.port, ['X-Forwarded-For: 6.6.6.6'])).ours).toBe('127.0.0.1');
  });
});
