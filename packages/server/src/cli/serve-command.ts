/** `herald serve`: run a node (or the primary of `server.workers` worker processes). */
import { Command, InvalidArgumentError } from 'commander';
import { configFromAssignments, configFromEnv, ConfigError, readConfigFile, resolveConfig, type HeraldConfig } from '../config.js';
import { installProcessFaultPolicy } from '../process-policy.js';
import { startHerald } from '../server.js';
import { configWarnings } from './advice.js';
import { CliError, FAILURE, USAGE } from './fail.js';
import { isPrimaryOfWorkers, runPrimary, workerNodeName } from './workers.js';

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function port(raw: string): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('a port is an integer from 0 to 65535');
  return n;
}

interface ServeOptions {
  config?: string;
  port?: number;
  host?: string;
  logLevel?: string;
  set: string[];
}

function configFor(opts: ServeOptions): Readonly<HeraldConfig> {
  try {
    const flags: Record<string, unknown> = configFromAssignments(opts.set);
    const server: Record<string, unknown> = { ...((flags.server as object) ?? {}) };
    if (opts.port !== undefined) server.port = opts.port;
    if (opts.host) server.host = opts.host;
    flags.server = server;
    if (opts.logLevel) flags.log = { ...((flags.log as object) ?? {}), level: opts.logLevel };
    return resolveConfig(opts.config ? readConfigFile(opts.config) : {}, configFromEnv(process.env), flags);
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(err.message, USAGE);
    throw err;
  }
}

async function serve(opts: ServeOptions): Promise<void> {
  let config = configFor(opts);
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
    throw new CliError(`cannot start: ${(err as Error).message}`, err instanceof ConfigError ? USAGE : FAILURE);
  }
  // A fault nothing caught leaves the process in an unknown state: log it, close the clients
  // briefly (they reconnect and recover), exit non-zero for the supervisor to restart us.
  const live = server;
  installProcessFaultPolicy({ log: live.app.log, beforeExit: () => live.shutdown(1000), graceMs: 3000 });
  // With the port actually bound (server.port 0 picks one), so the origin advice names it.
  for (const warning of configWarnings(config, server.port)) server.app.log.warn(warning);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      live.app.log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    live.app.log.info({ signal, drainMs: config.shutdown.drainTimeoutMs }, 'draining');
    const hard = setTimeout(() => process.exit(1), config.shutdown.drainTimeoutMs + 5000);
    hard.unref();
    live.shutdown().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

export function serveCommand(): Command {
  return new Command('serve')
    .description('run a Herald node')
    .option('-c, --config <file>', 'JSON config file (layered over configs/default.json)', process.env.HERALD_CONFIG)
    .option('-p, --port <port>', 'listen port (server.port)', port)
    .option('--host <host>', 'listen address (server.host)')
    .option('--log-level <level>', 'log.level')
    .option('--set <key=value>', 'any config key, e.g. --set limits.maxConnections=5000 (repeatable)', collect, [])
    .action(serve);
}
