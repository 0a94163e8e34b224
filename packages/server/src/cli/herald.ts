#!/usr/bin/env node
/**
 * The `herald` command. It uses only the public APIs of the server and the protocol; this is the
 * one place that reads `process.env` and argv.
 */
import { Command, InvalidArgumentError } from 'commander';
import { SignJWT } from 'jose';
import { WebSocket } from 'ws';
import { configFromAssignments, configFromEnv, ConfigError, hmacSecretProblem, readConfigFile, resolveConfig } from '../config.js';
import { HERALD_VERSION, startHerald } from '../server.js';
import { installProcessFaultPolicy } from '../process-policy.js';
import { isPrimaryOfWorkers, runPrimary, workerNodeName } from './workers.js';

const program = new Command();
program.name('herald').description('Herald: millisecond message push over WebSocket').version(HERALD_VERSION);

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function port(raw: string): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('a port is an integer from 0 to 65535');
  return n;
}

program
  .command('serve')
  .description('run a Herald node')
  .option('-c, --config <file>', 'JSON config file (layered over configs/default.json)', process.env.HERALD_CONFIG)
  .option('-p, --port <port>', 'listen port (server.port)', port)
  .option('--host <host>', 'listen address (server.host)')
  .option('--log-level <level>', 'log.level')
  .option('--set <key=value>', 'any config key, e.g. --set limits.maxConnections=5000 (repeatable)', collect, [])
  .action(async (opts: { config?: string; port?: number; host?: string; logLevel?: string; set: string[] }) => {
    let config;
    try {
      const flags: Record<string, unknown> = configFromAssignments(opts.set);
      const server: Record<string, unknown> = { ...((flags.server as object) ?? {}) };
      if (opts.port !== undefined) server.port = opts.port;
      if (opts.host) server.host = opts.host;
      flags.server = server;
      if (opts.logLevel) flags.log = { ...((flags.log as object) ?? {}), level: opts.logLevel };
      config = resolveConfig(opts.config ? readConfigFile(opts.config) : {}, configFromEnv(process.env), flags);
    } catch (err) {
      if (err instanceof ConfigError) {
        process.stderr.write(`herald: ${err.message}\n`);
        process.exit(2);
      }
      throw err;
    }
    if (isPrimaryOfWorkers(config)) {
      runPrimary(config, (msg, extra) => process.stdout.write(`${JSON.stringify({ level: 30, time: Date.now(), pid: process.pid, ...extra, msg })}\n`));
      return;
    }
    if (process.env.HERALD_WORKER_INDEX !== undefined) {
      config = resolveConfig(config, { server: { nodeName: workerNodeName(config.server.nodeName) } });
    }
    let server;
    try {
      server = await startHerald({ config });
    } catch (err) {
      process.stderr.write(`herald: cannot start: ${(err as Error).message}\n`);
      process.exit(err instanceof ConfigError ? 2 : 1);
    }
    // A fault nothing caught leaves the process in an unknown state: log it, close the clients
    // briefly (they reconnect and recover), exit non-zero for the supervisor to restart us.
    const live = server;
    installProcessFaultPolicy({ log: live.app.log, beforeExit: () => live.shutdown(1000), graceMs: 3000 });
    if (config.api.keys.length === 0) server.app.log.warn('no api.keys configured: the HTTP API refuses every request (set HERALD_API__KEYS)');
    if (config.auth.anonymous) server.app.log.warn('auth.anonymous is on: anyone may connect to public channels');
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) {
        server.app.log.warn({ signal }, 'second signal: exiting now');
        process.exit(1);
      }
      stopping = true;
      server.app.log.info({ signal, drainMs: config.shutdown.drainTimeoutMs }, 'draining');
      const hard = setTimeout(() => process.exit(1), config.shutdown.drainTimeoutMs + 5000);
      hard.unref();
      server.shutdown().then(
        () => process.exit(0),
        () => process.exit(1),
      );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });

program
  .command('token')
  .description('mint a connection token (HS256) for testing')
  .requiredOption('-u, --user <id>', 'the user id (sub)')
  .option('-s, --secret <secret>', 'HMAC secret (auth.jwt.hmacSecret)', process.env.HERALD_AUTH__JWT__HMAC_SECRET)
  .option('--channels <patterns>', 'comma-separated channel patterns allowed to subscribe', '')
  .option('--publish <patterns>', 'comma-separated channel patterns allowed to publish', '')
  .option('--tag <key=value>', 'a tag (repeatable)', collect, [])
  .option('--ttl <seconds>', 'lifetime in seconds', '3600')
  .action(async (opts: { user: string; secret?: string; channels: string; publish: string; tag: string[]; ttl: string }) => {
    if (!opts.secret) {
      process.stderr.write('herald token: give --secret or set HERALD_AUTH__JWT__HMAC_SECRET\n');
      process.exit(2);
    }
    // A token signed with a secret the server would refuse could never be verified.
    const secretProblem = hmacSecretProblem(opts.secret);
    if (secretProblem) {
      process.stderr.write(`herald token: --secret ${secretProblem}: the server refuses a shorter auth.jwt.hmacSecret\n`);
      process.exit(2);
    }
    const ttl = Number(opts.ttl);
    if (!Number.isInteger(ttl) || ttl <= 0) {
      process.stderr.write('herald token: --ttl must be a whole number of seconds above 0\n');
      process.exit(2);
    }
    const split = (s: string) => s.split(',').map((x) => x.trim()).filter(Boolean);
    const tags = Object.fromEntries(opts.tag.map((t) => {
      const i = t.indexOf('=');
      return [t.slice(0, i), t.slice(i + 1)];
    }));
    const jwt = await new SignJWT({ channels: split(opts.channels), publish: split(opts.publish), tags })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(opts.user)
      .setIssuedAt()
      .setExpirationTime(`${ttl}s`)
      .sign(new TextEncoder().encode(opts.secret));
    process.stdout.write(`${jwt}\n`);
  });

program
  .command('publish')
  .description('publish a message through a running server\'s HTTP API')
  .option('--url <url>', 'server base URL', 'http://127.0.0.1:8080')
  .option('-k, --key <apiKey>', 'API key', process.env.HERALD_API_KEY)
  .option('--channel <name>')
  .option('--user <id>')
  .option('--broadcast')
  .option('--filter <json>', 'tag filter as JSON')
  .requiredOption('-e, --event <eventType>')
  .option('-d, --data <json>', 'payload as JSON', '{}')
  .action(async (opts: { url: string; key?: string; channel?: string; user?: string; broadcast?: boolean; filter?: string; event: string; data: string }) => {
    const body: Record<string, unknown> = { eventType: opts.event, payload: JSON.parse(opts.data) };
    if (opts.channel) body.channel = opts.channel;
    if (opts.user) body.user = opts.user;
    if (opts.broadcast) body.broadcast = true;
    if (opts.filter) body.filter = JSON.parse(opts.filter);
    const res = await fetch(`${opts.url}/api/v1/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(opts.key ? { authorization: `Bearer ${opts.key}` } : {}) },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    (res.ok ? process.stdout : process.stderr).write(`${text}\n`);
    if (!res.ok) process.exit(1);
  });

program
  .command('subscribe')
  .description('connect and print every frame received')
  .option('--url <url>', 'WebSocket URL', 'ws://127.0.0.1:8080/ws')
  .option('-t, --token <jwt>', 'connection token')
  .option('--channel <name>', 'channel to subscribe (repeatable)', collect, [])
  .action((opts: { url: string; token?: string; channel: string[] }) => {
    const ws = new WebSocket(opts.url);
    let id = 0;
    ws.on('open', () => ws.send(JSON.stringify({ type: 'connect', id: ++id, ...(opts.token ? { token: opts.token } : {}) })));
    ws.on('message', (data) => {
      const text = String(data);
      const frame = JSON.parse(text) as { type: string };
      if (frame.type === 'ping') return ws.send('{"type":"pong"}');
      process.stdout.write(`${text}\n`);
      if (frame.type === 'connected') for (const channel of opts.channel) ws.send(JSON.stringify({ type: 'subscribe', id: ++id, channel }));
    });
    ws.on('close', (code, reason) => {
      process.stderr.write(`closed ${code} ${String(reason)}\n`);
      process.exit(code === 1000 ? 0 : 1);
    });
    ws.on('error', (err) => process.stderr.write(`error: ${err.message}\n`));
  });


await program.parseAsync(process.argv);
