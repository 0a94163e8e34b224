/**
 * Every way a `herald` command fails ends the same: exactly one line on stderr naming the command
 * and the cause, nothing on stdout, no stack trace, and a non-zero exit code (2 for usage, 1 at
 * run time).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HeraldServer } from '../src/server.js';
import { closedPort, runCli, tempFile } from './helpers/cli.js';
import { API_KEY, SECRET, startTestServer } from './helpers/server.js';

let server: HeraldServer;
let downPort: number;
beforeAll(async () => {
  server = await startTestServer();
  downPort = await closedPort();
});
afterAll(() => server?.close());

const goodConfig = () => tempFile('ok.json', JSON.stringify({ server: { host: '127.0.0.1' }, auth: { jwt: { hmacSecret: SECRET } } }));

interface Case {
  name: string;
  args: () => string[];
  exit: number;
  message: RegExp;
}

const cases: Case[] = [
  { name: 'unknown command', args: () => ['frobnicate'], exit: 2, message: /^herald: unknown command 'frobnicate'$/ },
  { name: 'unknown flag', args: () => ['publish', '--bogus'], exit: 2, message: /^herald publish: unknown option '--bogus'$/ },
  { name: 'bad flag value (choice)', args: () => ['publish', '--channel', 'c', '-e', 'x', '--delivery', 'sometimes'], exit: 2, message: /^herald publish: option '--delivery <mode>' argument 'sometimes' is invalid/ },
  { name: 'bad flag value (port)', args: () => ['serve', '--port', 'eighty'], exit: 2, message: /^herald: option '-p, --port <port>' argument 'eighty' is invalid\. a port is an integer/ },
  { name: 'missing argument', args: () => ['config', 'check'], exit: 2, message: /^herald config check: missing required argument 'file'$/ },
  { name: 'missing required flag', args: () => ['token'], exit: 2, message: /^herald token: required option '-u, --user <id>' not specified$/ },
  { name: 'bad JSON in --data', args: () => ['publish', '--url', server.url, '--channel', 'c', '-e', 'x', '-d', '{nope'], exit: 2, message: /^herald publish: --data is not valid JSON: / },
  { name: 'bad JSON in --filter', args: () => ['publish', '--url', server.url, '--broadcast', '-e', 'x', '--filter', '[1,'], exit: 2, message: /^herald publish: --filter is not valid JSON: / },
  { name: 'bad JSON in a batch line', args: () => ['publish', '--url', server.url, '--batch', tempFile('b.jsonl', '{"channel":"c","eventType":"e","payload":1}\n{oops\n')], exit: 2, message: /^herald publish: \S+b\.jsonl line 2 is not valid JSON: / },
  { name: 'missing batch file', args: () => ['publish', '--url', server.url, '--batch', '/nonexistent/b.jsonl'], exit: 2, message: /^herald publish: cannot read \/nonexistent\/b\.jsonl: ENOENT/ },
  { name: 'bad --url (publish)', args: () => ['publish', '--url', 'localhost:8080', '--channel', 'c', '-e', 'x'], exit: 2, message: /^herald publish: --url must be an http:\/\/ or https:\/\/ URL, got "localhost:8080"$/ },
  { name: 'no audience', args: () => ['publish', '--url', server.url, '-e', 'x'], exit: 2, message: /^herald publish: give exactly one of --channel, --user or --broadcast$/ },
  { name: 'server down (publish)', args: () => ['publish', '--url', `http://127.0.0.1:${downPort}`, '--key', API_KEY, '--channel', 'c', '-e', 'x'], exit: 1, message: /^herald publish: cannot reach http:\/\/127\.0\.0\.1:\d+: connect ECONNREFUSED/ },
  { name: 'server refuses (wrong API key)', args: () => ['publish', '--url', server.url, '--key', 'wrong-key-123', '--channel', 'c', '-e', 'x'], exit: 1, message: /^herald publish: 401 invalid_api_key: / },
  { name: 'server refuses (invalid message)', args: () => ['publish', '--url', server.url, '--key', API_KEY, '--channel', 'c', '-e', 'bad event type!'], exit: 1, message: /^herald publish: 400 \w+: / },
  { name: 'server down (subscribe, no reconnect)', args: () => ['subscribe', '--url', `ws://127.0.0.1:${downPort}/ws`, '--no-reconnect', '--channel', 'c'], exit: 1, message: /^herald subscribe: cannot connect to ws:\/\/127\.0\.0\.1:\d+\/ws: 1006 WebSocket error: connect ECONNREFUSED/ },
  { name: 'bad --url (subscribe)', args: () => ['subscribe', '--url', 'http://example/ws'], exit: 2, message: /^herald subscribe: --url must be a ws:\/\/ or wss:\/\/ URL/ },
  { name: 'bad --recover', args: () => ['subscribe', '--channel', 'c', '--recover', 'latest'], exit: 2, message: /^herald subscribe: --recover expects offset@epoch/ },
  { name: 'missing config file', args: () => ['config', 'check', '/nonexistent/herald.json'], exit: 1, message: /^herald config check: cannot read config file \/nonexistent\/herald\.json: ENOENT/ },
  { name: 'config file not JSON', args: () => ['config', 'check', tempFile('bad.json', '{"server": ')], exit: 1, message: /^herald config check: config file \S+ is not valid JSON: / },
  { name: 'invalid config (several problems)', args: () => ['config', 'check', tempFile('inv.json', '{"limits":{"maxConnections":0},"server":{"port":-1}}')], exit: 1, message: /^herald config check: invalid configuration: .*;/ },
  { name: 'invalid token', args: () => ['token', 'verify', 'not.a.jwt', '--config', goodConfig()], exit: 1, message: /^herald token verify: token refused: unauthorized: / },
  { name: 'verify without a key in the config', args: () => ['token', 'verify', 'x.y.z', '--config', tempFile('nokey.json', '{}')], exit: 1, message: /^herald token verify: \S+ no key to verify tokens with/ },
  { name: 'refused secret (short)', args: () => ['token', '--user', 'a', '--secret', 'tooshort'], exit: 2, message: /^herald token: --secret must be at least 32 characters/ },
  { name: 'refused secret (published, beyond loopback)', args: () => ['token', '--user', 'a', '--config', tempFile('pub.json', JSON.stringify({ server: { host: '0.0.0.0' }, auth: { jwt: { hmacSecret: 'dev-secret-change-me-0123456789abcdef' } } }))], exit: 1, message: /^herald token: server\.host: "0\.0\.0\.0" is reachable from other machines/ },
  { name: 'bad --ttl', args: () => ['token', '--user', 'a', '--secret', SECRET, '--ttl', '-5'], exit: 2, message: /^herald token: --ttl must be a whole number/ },
  { name: 'serve with an invalid config', args: () => ['serve', '--config', tempFile('inv.json', '{"server":{"port":"x"}}')], exit: 2, message: /^herald: invalid configuration: server\.port/ },
  { name: 'serve on a port in use', args: () => ['serve', '--config', goodConfig(), '--port', String(server.port)], exit: 1, message: /^herald: cannot start: .*EADDRINUSE/ },
];

describe('every CLI failure is one line and a non-zero exit code', () => {
  it.each(cases)('$name', async ({ args, exit, message }) => {
    const r = await runCli(args());
    expect(r.code, r.stderr).toBe(exit);
    expect(r.stdout).toBe('');
    const lines = r.stderr.split('\n').filter(Boolean);
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(message);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});
