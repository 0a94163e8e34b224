/**
 * The shipped nginx sample (deploy/nginx/herald.conf), run with the real nginx in front of a
 * test Herald with server.trustProxy 1 (issue 11, M7 and the proxy recipe): X-Forwarded-For is
 * overwritten at the edge, no token reaches the access log, /metrics, /docs and /admin are not public,
 * and the TLS listener carries WebSockets. nginx is a child process stopped by its PID.
 *
 * Without nginx or openssl the tests are skipped with a loud warning, except under CI=true,
 * where that is a failure (.ci/run installs nginx).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { get as httpsGet } from 'node:https';
import { createServer as createTcpServer, connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HeraldServer } from '../src/server.js';
import { refusedUpgrade } from './helpers/raw-conn.js';
import { makeToken, startTestServer, TestSocket } from './helpers/server.js';
import { waitFor } from './helpers/wait.js';

const NGINX = '/usr/sbin/nginx';
const OPENSSL = '/usr/bin/openssl';
const SAMPLE = fileURLToPath(new URL('../../../deploy/nginx/herald.conf', import.meta.url));

const haveTools = existsSync(NGINX) && existsSync(OPENSSL);
if (!haveTools) {
  const message = `nginx (${NGINX}) or openssl (${OPENSSL}) is not installed: apt-get install -y nginx openssl`;
  if (process.env.CI === 'true') throw new Error(`${message} (CI=true: failing instead of skipping)`);
  const bar = '!'.repeat(100);
  console.warn(`\n${bar}\n!!! SKIPPING nginx SAMPLE TESTS — ${message}\n${bar}\n`);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createTcpServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect(port, '127.0.0.1');
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

interface RunningNginx {
  dir: string;
  httpPort: number;
  tlsPort: number;
  child: ChildProcess;
  accessLog(): string;
  stop(): Promise<void>;
}

/**
 * Renders the sample for this machine — TLS enabled with a throw-away certificate, ports
 * substituted, every upstream pointing at `upstreamPort`, one worker — checks it with `nginx -t`
 * and starts nginx in the foreground as a child process.
 */
async function startNginx(upstreamPort: number): Promise<RunningNginx> {
  const dir = mkdtempSync(join(tmpdir(), 'herald-nginx-'));
  // The workers (an unprivileged user when started as root) traverse it for temp files.
  chmodSync(dir, 0o755);
  mkdirSync(join(dir, 'logs'));
  mkdirSync(join(dir, 'tmp'));
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  execFileSync(OPENSSL, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1'], { stdio: 'ignore' });
  const httpPort = await freePort();
  const tlsPort = await freePort();
  const sample = readFileSync(SAMPLE, 'utf8');
  const rendered = sample
    .replace(/^#TLS /gm, '')
    .replace('listen 8080;', `listen 127.0.0.1:${httpPort};`)
    .replace('listen 8443 ssl;', `listen 127.0.0.1:${tlsPort} ssl;`)
    .replace('/etc/ssl/herald/fullchain.pem', cert)
    .replace('/etc/ssl/herald/privkey.pem', key)
    .replace(/server 127\.0\.0\.1:808[123] /g, `server 127.0.0.1:${upstreamPort} `)
    .replace('worker_processes auto;', 'worker_processes 1;')
    .replace(/^worker_rlimit_nofile .*$/m, '')
    .replace(/worker_connections \d+;/, 'worker_connections 1024;');
  // Every substitution must have applied: a changed sample must not silently test something else.
  for (const gone of ['listen 8080;', 'listen 8443', '/etc/ssl/herald', ':8081']) expect(rendered).not.toContain(gone);
  expect(rendered).not.toMatch(/^#TLS /m);
  const conf = join(dir, 'nginx.conf');
  writeFileSync(conf, rendered);
  execFileSync(NGINX, ['-p', dir, '-c', conf, '-t', '-q'], { stdio: 'pipe' });
  const child = spawn(NGINX, ['-p', dir, '-c', conf, '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  for (let i = 0; !(await portOpen(httpPort)); i++) {
    if (child.exitCode !== null || i > 100) throw new Error(`nginx did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    dir,
    httpPort,
    tlsPort,
    child,
    accessLog: () => readFileSync(join(dir, 'logs', 'access.log'), 'utf8'),
    stop: async () => {
      if (child.exitCode === null && child.pid !== undefined) {
        process.kill(child.pid, 'SIGQUIT');
        const killer = setTimeout(() => child.pid !== undefined && child.exitCode === null && process.kill(child.pid, 'SIGKILL'), 5000);
        await exited;
        clearTimeout(killer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

describe.skipIf(!haveTools)('the nginx sample in front of Herald (trustProxy 1)', () => {
  let herald: HeraldServer;
  let nginx: RunningNginx;
  let echo: Server;
  let echoNginx: RunningNginx;
  const echoed: Array<string | undefined> = [];

  beforeAll(async () => {
    herald = await startTestServer({ server: { trustProxy: 1 }, limits: { maxConnectionsPerIp: 2 } });
    nginx = await startNginx(herald.port);
    // A second copy of the sample in front of a server that records the X-Forwarded-For it gets.
    echo = createServer((req, res) => {
      echoed.push(req.headers['x-forwarded-for'] as string | undefined);
      res.end('ok');
    });
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', () => r()));
    echoNginx = await startNginx((echo.address() as AddressInfo).port);
  });

  afterAll(async () => {
    await nginx?.stop();
    await echoNginx?.stop();
    if (echo) await new Promise((r) => echo.close(r));
    await herald?.close();
  });

  it('passes nginx -t on the rendered config', () => {
    // startNginx ran `nginx -t`; the untouched sample (no TLS, no certificates) must pass too.
    execFileSync(NGINX, ['-p', nginx.dir, '-c', SAMPLE, '-t', '-q'], { stdio: 'pipe' });
  });

  it('overwrites X-Forwarded-For with the address nginx sees', async () => {
    for (const spoof of [undefined, '6.6.6.6', '6.6.6.6, 7.7.7.7']) {
      const r = await fetch(`http://127.0.0.1:${echoNginx.httpPort}/api/v1/stats`, { headers: spoof ? { 'x-forwarded-for': spoof } : {} });
      expect(r.status).toBe(200);
    }
    expect(echoed).toEqual(['127.0.0.1', '127.0.0.1', '127.0.0.1']);
  });

  it('keeps a per-IP limit of 2 whatever X-Forwarded-For the clients send', async () => {
    const url = `ws://127.0.0.1:${nginx.httpPort}/ws`;
    const open: WebSocket[] = [];
    const statuses: number[] = [];
    for (let i = 1; i <= 5; i++) {
      const headers = { 'x-forwarded-for': `10.9.9.${i}` };
      try {
        const s = await TestSocket.open(url, headers);
        open.push(s.ws);
        statuses.push(101);
      } catch (err) {
        statuses.push((err as { status?: number }).status ?? 0);
      }
    }
    expect(statuses).toEqual([101, 101, 429, 429, 429]);
    for (const ws of open) ws.close();
    await waitFor(() => herald.node.hub.sessions.size === 0, 5000, 'every session closed');
  });

  it('keeps the token out of the access log', async () => {
    const token = await makeToken({ sub: 'logcheck' });
    const s = await TestSocket.open(`ws://127.0.0.1:${nginx.httpPort}/ws?token=${token}`);
    expect((await s.request({ type: 'connect' })).type).toBe('connected');
    s.close();
    await s.closed;
    expect((await fetch(`http://127.0.0.1:${nginx.httpPort}/healthz?token=${token}`)).status).toBe(200);
    // nginx writes a WebSocket's line when the proxied connection ends.
    await waitFor(() => nginx.accessLog().includes('GET /ws ') && nginx.accessLog().includes('GET /healthz '), 5000, 'both requests in the access log');
    const log = nginx.accessLog();
    expect(log).not.toContain(token);
    expect(log).not.toContain(token.split('.')[2]!);
    expect(log).not.toContain('token=');
  });

  it('refuses /metrics, /docs and /admin to the public, in any spelling', async () => {
    for (const path of ['/metrics', '//metrics', '/metrics?x=1', '/%6Detrics', '/docs', '/docs/', '/docs/json', '/docs/static/index.html', '/admin', '/admin/', '//admin/login', '/%61dmin', '/admin/api/overview']) {
      const r = await fetch(`http://127.0.0.1:${nginx.httpPort}${path}`);
      expect({ path, status: r.status }).toEqual({ path, status: 403 });
    }
    // Herald itself serves them (to the nodes' own network).
    expect((await fetch(`${herald.url}/metrics`)).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${nginx.httpPort}/healthz`)).status).toBe(200);
  });

  it('refuses /metrics, /docs and /admin over TLS too', async () => {
    for (const path of ['/metrics', '/docs', '/admin']) {
      const status = await new Promise<number>((resolve, reject) => {
        httpsGet(`https://127.0.0.1:${nginx.tlsPort}${path}`, { rejectUnauthorized: false }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        }).once('error', reject);
      });
      expect({ path, status }).toEqual({ path, status: 403 });
    }
  });

  it('serves WebSockets over the TLS listener, keeping a URL token out of the access log', async () => {
    const token = await makeToken({ sub: 'tls-url' });
    const wsLines = () => nginx.accessLog().split('\n').filter((l) => l.includes('"GET /ws HTTP/1.1" 101')).length;
    const before = wsLines();
    const viaUrl = new TestSocket(new WebSocket(`wss://127.0.0.1:${nginx.tlsPort}/ws?token=${token}`, { rejectUnauthorized: false }));
    await new Promise<void>((resolve, reject) => {
      viaUrl.ws.once('open', () => resolve());
      viaUrl.ws.once('error', reject);
    });
    expect((await viaUrl.request({ type: 'connect' })).type).toBe('connected');
    viaUrl.close();
    await viaUrl.closed;
    // nginx writes a WebSocket's line when the proxied connection ends.
    await waitFor(() => wsLines() > before, 5000, 'the WebSocket line in the access log');
    expect(nginx.accessLog()).not.toContain(token.split('.')[2]!);

    const ws = new WebSocket(`wss://127.0.0.1:${nginx.tlsPort}/ws`, { rejectUnauthorized: false });
    const s = new TestSocket(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const reply = await s.request({ type: 'connect', token: await makeToken({ sub: 'tls' }) });
    expect(reply.type).toBe('connected');
    await s.subscribe('tls:room');
    await herald.publish({ channel: 'tls:room', eventType: 'e', payload: { over: 'tls' } });
    expect((await s.waitMessages(1))[0]!.message.payload).toEqual({ over: 'tls' });
    s.close();
  });

  it('refuses a spoofed origin with a named host through the proxy (same-origin fallback)', async () => {
    const host = `evil.example:${nginx.httpPort}`;
    expect((await refusedUpgrade(`ws://127.0.0.1:${nginx.httpPort}/ws`, { headers: { host, origin: `http://${host}` } })).status).toBe(403);
  });
});
