/**
 * `herald-bench run <scenario>` and `herald-bench compare`: the benchmark harness in bench/
 * behind the CLI. Scenarios, peers and the load generator live there; this file only maps flags.
 */
import { InvalidArgumentError, type Command } from 'commander';
import { compare, runOne, serversFor, targetsOf, type BenchOptions } from '../runner.js';
import { findScenario, SCENARIOS } from '../scenarios/index.js';
import { DEFAULT_SERVERS, isServerName, PEERS, SERVERS, type ServerName } from '../servers/targets.js';
import type { ClientKind, DeliveryMode } from '../loadgen/messages.js';
import { nativeRecv } from '../loadgen/native-recv.js';

interface Flags {
  connections?: number;
  rate?: number;
  duration?: number;
  runs?: number;
  pin?: boolean | string;
  jsonOut?: string;
  smoke?: boolean;
  workers: number;
  sourceIps: number;
  concurrency: number;
  publishSockets: number;
  maxOther: number;
  loopDelay: boolean;
  warmup?: number;
  client?: string;
  heraldBin?: string;
  wsPath: string;
  channels?: number;
  modes?: DeliveryMode[];
  devices?: number;
  churn?: number;
  rounds?: number;
  maxP99?: number;
  steps?: number;
}

/** Smoke run: tiny and quick, to check that everything starts and talks. */
const SMOKE = { connections: 50, rate: 20, duration: 3, runs: 1 };

function positiveInt(name: string) {
  return (raw: string): number => {
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be a non-negative integer`);
    return n;
  };
}

function positiveNumber(name: string) {
  return (raw: string): number => {
    const n = Number(raw);
    if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive number`);
    return n;
  };
}

function percent(name: string) {
  return (raw: string): number => {
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 1 || n > 100) throw new InvalidArgumentError(`${name} must be an integer from 1 to 100`);
    return n;
  };
}

function clientKind(raw: string): string {
  if (raw !== 'raw' && raw !== 'native' && raw !== 'ws') throw new InvalidArgumentError("--client is 'raw', 'native' or 'ws'");
  if (raw === 'native' && !nativeRecv()) throw new InvalidArgumentError('--client native needs native/bench-recv built: run `npm run build` (it needs python3, make and a C compiler)');
  return raw;
}

/** `--client` as given, else native when the addon is built and the run acknowledges nothing, else raw. */
function loadgenClient(scenario: string, flags: Flags): ClientKind {
  if (flags.client === 'ws' || flags.client === 'native' || flags.client === 'raw') return flags.client;
  if (acknowledges(scenario, flags)) return 'raw';
  if (nativeRecv()) return 'native';
  process.stderr.write('note: native/bench-recv is not built (npm run build builds it): the loadgen reads with --client raw\n');
  return 'raw';
}

function acknowledges(scenario: string, flags: Flags): boolean {
  return scenario === 'reliable' || flags.modes?.includes('at-least-once') === true;
}

/** Why `--client native` cannot run this scenario (it never acknowledges), or undefined. */
function nativeClientRefusal(scenario: string, flags: Flags): string | undefined {
  if (flags.client !== 'native') return undefined;
  if (acknowledges(scenario, flags)) return '--client native does not acknowledge deliveries: use --client raw for at-least-once runs';
  return undefined;
}

function servers(raw: string): ServerName[] {
  const list = raw.split(',').map((s) => s.trim()).filter(Boolean);
  for (const s of list) if (!isServerName(s)) throw new InvalidArgumentError(`unknown server "${s}" (known: ${SERVERS.join(', ')}, herald-redis-<1…9>, herald-nats-<1…9>, herald-workers-<1…9>)`);
  return list as ServerName[];
}

function modes(raw: string): DeliveryMode[] {
  const list = raw.split(',').map((s) => s.trim()).filter(Boolean);
  for (const m of list) if (m !== 'at-least-once' && m !== 'at-most-once') throw new InvalidArgumentError(`unknown delivery mode "${m}" (at-least-once, at-most-once)`);
  if (list.length === 0) throw new InvalidArgumentError('--modes needs at least one mode');
  return list as DeliveryMode[];
}

function withCommonOptions(cmd: Command): Command {
  return cmd
    .option('-c, --connections <n>', 'WebSocket connections (scenario default otherwise)', positiveInt('--connections'))
    .option('-r, --rate <n>', 'publishes per second', positiveNumber('--rate'))
    .option('-d, --duration <s>', 'measured window in seconds', positiveNumber('--duration'))
    .option('--pin [cpus]', 'pin server and loadgen to different cores with taskset (default 0:1, or SERVER:LOADGEN)')
    .option('--json-out <file>', 'append one JSON line per run (and the comparison summary) to this file')
    .option('--smoke', `tiny quick run (${SMOKE.connections} connections, ${SMOKE.rate}/s, ${SMOKE.duration} s, 1 run)`)
    .option('--workers <n>', 'loadgen worker processes (0 = as few as the fd limit allows)', positiveInt('--workers'), 0)
    .option('--source-ips <n>', 'spread connections over this many source addresses 127.0.0.2…', positiveInt('--source-ips'), 16)
    .option('--concurrency <n>', 'handshakes in flight per loadgen worker', positiveInt('--concurrency'), 200)
    .option('--publish-sockets <n>', 'keep-alive connections of the publisher (more than 1 may reorder publishes)', positiveInt('--publish-sockets'), 1)
    .option('--max-other <pct>', 'repeat a run (at most twice) when other processes used more than this % of a core during it, and wait for the machine to be this quiet first (0 = off)', positiveInt('--max-other'), 25)
    .option('--no-loop-delay', "don't scrape Herald's /metrics each second for its event-loop delay (a scrape costs Herald CPU and blocks its loop, which the peers never pay)")
    .option('--warmup <s>', 'publishing scenarios: publish at the rate this long before measuring, so every server runs its publish path compiled (default 0)', positiveNumber('--warmup'))
    .option('--client <kind>', "loadgen WebSocket client: 'native' (its own minimal one for the handshake, then a C thread reads every socket and also reports wire latency from the kernel's receive timestamps; the leanest, and the default when built and nothing is acknowledged), 'raw' (the minimal one throughout; the default for at-least-once runs) or 'ws' (the library)", clientKind)
    .option('--channels <n>', 'channels of the multi-channel scenarios (channels: 200, burst: 10)', positiveInt('--channels'))
    .option('--devices <n>', 'users: users have 1, 2, … n connections in turn (default 3; Herald allows 32 per user)', positiveInt('--devices'))
    .option('--churn <pct>', 'storm: % of the connections dropped and reconnected each round (default 30)', percent('--churn'))
    .option('--rounds <n>', 'storm: reconnect rounds, evenly spaced over the duration (default 5)', positiveInt('--rounds'))
    .option('--max-p99 <ms>', 'saturate: stop raising the rate once p99 passes this (default 50)', positiveNumber('--max-p99'))
    .option('--steps <n>', 'saturate: at most this many rate steps of --duration seconds each (default 12)', positiveInt('--steps'))
    .option('--modes <list>', 'delivery modes, comma-separated: at-least-once, at-most-once (compare runs every server in each; reliable compares both by default)', modes)
    .option('--herald-bin <file>', 'Herald CLI entry point to benchmark (default: this build)')
    .option('--ws-path <path>', "path of Herald's WebSocket endpoint", '/ws');
}

function benchOptions(scenario: string, flags: Flags): BenchOptions {
  const smoke = flags.smoke === true;
  return {
    scenario,
    connections: flags.connections ?? (smoke ? SMOKE.connections : undefined),
    rate: flags.rate ?? (smoke ? SMOKE.rate : undefined),
    durationS: flags.duration ?? (smoke ? SMOKE.duration : undefined),
    workers: flags.workers,
    sourceAddresses: Math.max(1, flags.sourceIps),
    concurrency: Math.max(1, flags.concurrency),
    publishSockets: Math.max(1, flags.publishSockets),
    maxOtherPct: flags.maxOther,
    loopDelay: flags.loopDelay,
    warmupS: flags.warmup,
    client: loadgenClient(scenario, flags),
    pin: flags.pin,
    jsonOut: flags.jsonOut,
    heraldBin: flags.heraldBin,
    heraldWsPath: flags.wsPath,
    channels: flags.channels,
    modes: flags.modes,
    devices: flags.devices,
    churnPct: flags.churn,
    rounds: flags.rounds,
    maxP99Ms: flags.maxP99,
    maxSteps: flags.steps,
  };
}

function checkScenario(name: string): string {
  if (!SCENARIOS.some((s) => s.name === name)) throw new InvalidArgumentError(`unknown scenario "${name}" (known: ${SCENARIOS.map((s) => s.name).join(', ')})`);
  return name;
}

/** Adds `run <scenario>` and `compare` to `program` (the `herald-bench` command). */
export function registerBenchCommands(program: Command): Command {
  const bench = program
    .description('benchmark Herald (and the comparison peers) over loopback')
    .addHelpText('after', `\nScenarios:\n${SCENARIOS.map((s) => `  ${s.name.padEnd(10)} ${s.summary}`).join('\n')}\n\nSee the herald-bench README.`);

  const run = withCommonOptions(
    bench
      .command('run <scenario>')
      .description('run one scenario against one server')
      .option('-s, --server <name>', `server under test: ${SERVERS.join(', ')}`, 'herald'),
  );
  run.action(async (scenario: string, flags: Flags & { server: string }) => {
    checkScenario(scenario);
    const [server] = servers(flags.server);
    const why = findScenario(scenario).heraldOnly;
    if (why && server && PEERS.includes(server)) run.error(`error: ${scenario} runs against Herald only: ${why}`);
    const refusal = nativeClientRefusal(scenario, flags);
    if (refusal) run.error(`error: ${refusal}`);
    await runOne(server ?? 'herald', benchOptions(scenario, flags));
  });

  const compareCommand = withCommonOptions(
    bench
      .command('compare')
      .description('run a scenario against Herald and each peer, N times, and report medians and Herald/peer ratios')
      .option('--scenario <name>', 'scenario to compare', checkScenario, 'fanout')
      .option('--servers <list>', `comma-separated servers: ${SERVERS.join(', ')}, herald-redis-<n> (n Herald nodes on engine redis), herald-nats-<n> (the same on engine nats), herald-workers-<n> (one Herald with n worker processes sharing its port, engine redis); default herald,ws-plain,ws-preframed,socketio (ws-native, the send(2) floor, only when named), reliable: herald`, servers)
      .option('--runs <n>', 'repetitions per server (default 3, 1 with --smoke)', positiveInt('--runs')),
  );
  compareCommand.action(async (flags: Flags & { scenario: string; servers?: ServerName[] }) => {
    const refusal = nativeClientRefusal(flags.scenario, flags);
    if (refusal) compareCommand.error(`error: ${refusal}`);
    const runs = Math.max(1, flags.runs ?? (flags.smoke ? SMOKE.runs : 3));
    // The peers know no at-least-once: they would silently run at-most-once.
    const requested = flags.servers ?? (flags.scenario === 'reliable' ? ['herald' as const] : [...DEFAULT_SERVERS]);
    const list = serversFor(flags.scenario, requested, (line) => process.stderr.write(`${line}\n`));
    const options = benchOptions(flags.scenario, flags);
    const summary = await compare(list, runs, options);
    if (Object.keys(summary.medians).length < targetsOf(list, options).length) process.exitCode = 1;
  });

  return bench;
}
