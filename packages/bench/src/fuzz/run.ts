/**
 * A fuzz run: start Herald as a child process, connect the bystander and the attackers, send the
 * generated inputs at a bounded rate until the budget (inputs or time) is spent or the server
 * dies, then report. Used by `npm run fuzz` (packages/bench/src/fuzz/cli.ts) and by packages/bench/test/fuzz.test.ts.
 */
import { writeFileSync } from 'node:fs';
import { Agent } from 'node:http';
import { Attacker } from './attacker.js';
import { Bystander } from './bystander.js';
import { InputGenerator, type Input } from './generator.js';
import { AttackerPool } from './pool.js';
import { Tally } from './recorder.js';
import { minimize } from './replay.js';
import { Rng } from './rng.js';
import { RunState } from './run-state.js';
import { sendHttp, sendRaw } from './senders.js';
import { healthy, procMemory, startServer, type ServerExit, type ServerHandle } from './server-process.js';
import { fatalOutput, mb, progressLine, type FuzzSummary, type Report } from './summary.js';
import { fuzzTokens } from './tokens.js';
import type { WsSend } from './attacker.js';
import { attackerClaims, messageLimit, mintToken } from './world.js';

export type { FuzzSummary };

export interface FuzzOptions {
  /** Inputs to send (WebSocket messages or control sequences, first frames, HTTP requests, raw connections). */
  frames: number;
  seed: number;
  /** Attacker connections kept open. */
  connections: number;
  /** Stop after this long even if `frames` are not all sent; 0: no time limit. */
  durationMs: number;
  /** Inputs per second. */
  rate: number;
  /** Where the JSON report goes (summary, anomalies with their inputs, the last inputs, a crash's reproducer). */
  out: string;
  engine: 'memory' | 'sqlite';
  /** `key=value` config assignments for the server (as `herald serve --set`). */
  set: string[];
  /** Bystander publishes per second. */
  bystanderRate: number;
  /** A bystander delivery slower than this is reported as a stall. */
  stallMs: number;
  /** How long a probe or a valid frame may wait for its answer. */
  answerTimeoutMs: number;
  /** Server RSS growth over the run that is reported as an anomaly. */
  rssGrowthLimitBytes: number;
  /** After a crash, replay the last inputs one at a time to find one that crashes a fresh server alone. */
  minimize: boolean;
  /** How many of the last inputs the minimizer tries. */
  minimizeTries: number;
  progressMs: number;
  progress: (line: string) => void;
  /** Herald's CLI entry point (default: the built one). */
  cli?: string;
  /** Extra environment variables for the server process. */
  serverEnv?: Record<string, string>;
  /** Send only valid frames and requests (a baseline: same load and bystander, no fuzzing). */
  validOnly?: boolean;
}

export const DEFAULT_OPTIONS: Omit<FuzzOptions, 'seed' | 'out'> = {
  frames: 100_000,
  connections: 20,
  durationMs: 0,
  rate: 2000,
  engine: 'memory',
  set: [],
  bystanderRate: 50,
  stallMs: 1000,
  answerTimeoutMs: 10_000,
  rssGrowthLimitBytes: 256 * 1024 * 1024,
  minimize: false,
  minimizeTries: 40,
  progressMs: 5000,
  progress: () => undefined,
};

/** Inputs kept waiting for a connection of their kind before the scheduler stops drawing new ones. */
const MAX_PENDING = 64;
/** HTTP requests in flight at once (some are held by design: long polls, requests to clients). */
const MAX_HTTP_IN_FLIGHT = 48;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitUntil(cond: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond() && Date.now() < deadline) await sleep(20);
}

export async function runFuzz(options: Partial<FuzzOptions> & { seed: number }): Promise<FuzzSummary> {
  const opts: FuzzOptions = { ...DEFAULT_OPTIONS, out: `fuzz-report-${options.seed}.json`, ...options };
  const limit = messageLimit(opts.set);
  const server = await startServer({ engine: opts.engine, set: opts.set, ...(opts.cli ? { cli: opts.cli } : {}), ...(opts.serverEnv ? { env: opts.serverEnv } : {}) });
  const killOnExit = () => {
    try {
      process.kill(server.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  process.once('exit', killOnExit);
  try {
    return await fuzzAgainst(server, opts, limit);
  } finally {
    process.off('exit', killOnExit);
    if (!server.exit) await server.stop();
  }
}

async function fuzzAgainst(server: ServerHandle, opts: FuzzOptions, limit: number): Promise<FuzzSummary> {
  const run = new RunState('127.0.0.1', server.port, limit);
  const rng = new Rng(opts.seed);
  const genRng = rng.fork();
  const pickRng = rng.fork();
  const connRng = rng.fork();

  const attackerTokens = await Promise.all(Array.from({ length: opts.connections }, (_, i) => mintToken(attackerClaims(i))));
  const userTokens = await Promise.all([0, 1, 2, 3].map((i) => mintToken(attackerClaims(i))));
  const connectTokens = fuzzTokens();
  const badTokens = connectTokens.filter(([label]) => label !== 'valid' && !label.startsWith('channels')).map(([, t]) => t);
  const generator = new InputGenerator(genRng, limit, { userTokens, badTokens, connectTokens, validToken: userTokens[0]! }, `${run.host}:${run.port}`, opts.validOnly);

  let shuttingDown = false;
  let crash: ServerExit | undefined;
  void server.exited.then((exit) => {
    if (shuttingDown) return;
    crash = exit;
    run.anomaly('crash', `the server exited (code ${exit.code}, signal ${exit.signal})`, undefined, run.lastInputs.last(20));
    run.serverGone = true;
  });

  const bystander = new Bystander(server.baseUrl, opts.stallMs);
  bystander.onProblem = (kind, message) => run.anomaly(kind, message);
  await bystander.start();
  const pool = new AttackerPool(run, opts.connections, attackerTokens, connRng);
  await pool.start();
  const rssBefore = procMemory(server.pid, 'VmRSS') ?? null;
  bystander.startTraffic(opts.bystanderRate);

  const httpAgent = new Agent({ keepAlive: true, maxSockets: MAX_HTTP_IN_FLIGHT });
  const inflight = { first: 0, http: 0, raw: 0 };
  const firstConns = new Set<Attacker>();

  const firstFrames = async (send: WsSend): Promise<void> => {
    const a = new Attacker(run, 'preconnect', connRng.fork());
    firstConns.add(a);
    try {
      if (!(await a.ready)) return;
      a.send(send);
      const answered = await a.waitAnswer(opts.answerTimeoutMs);
      if (!answered && a.state !== 'closed' && !a.condemned) run.anomaly('no-answer', `first frames got no answer within ${opts.answerTimeoutMs} ms`, a);
      if (!a.condemned) a.close();
      await Promise.race([a.closed, sleep(6000)]);
    } finally {
      a.destroy();
      firstConns.delete(a);
    }
  };

  const dispatch = (input: Input): boolean => {
    switch (input.lane) {
      case 'ws': {
        const a = pool.pick(input.auth, pickRng);
        if (!a) return false;
        a.send(input.send);
        if (input.control) run.counts.wsControlInputs++;
        else run.counts.wsMessages++;
        return true;
      }
      case 'first':
        if (inflight.first >= 8) return false;
        inflight.first++;
        run.counts.firstFrames++;
        void firstFrames(input.send).finally(() => inflight.first--);
        return true;
      case 'http':
        if (inflight.http >= MAX_HTTP_IN_FLIGHT) return false;
        inflight.http++;
        run.counts.httpRequests++;
        void sendHttp(run, input.spec, httpAgent, () => pool.live(pickRng), opts.answerTimeoutMs).finally(() => inflight.http--);
        return true;
      case 'raw':
        if (inflight.raw >= 8) return false;
        inflight.raw++;
        run.counts.rawConnections++;
        void sendRaw(run, input.input).finally(() => inflight.raw--);
        return true;
    }
  };

  const startedAt = Date.now();
  const timeUp = () => opts.durationMs > 0 && Date.now() - startedAt >= opts.durationMs;
  const finished = () => run.counts.inputs >= opts.frames || timeUp() || run.serverGone;

  const checker = setInterval(() => {
    const now = Date.now();
    for (const a of pool.all()) a.checkTimeouts(now, opts.answerTimeoutMs);
  }, 500);
  let healthBusy = false;
  const health = setInterval(() => {
    if (healthBusy || run.serverGone) return;
    healthBusy = true;
    const t = Date.now();
    void healthy(server.baseUrl, opts.answerTimeoutMs).then((ok) => {
      healthBusy = false;
      if (!ok && !run.serverGone) run.anomaly('unresponsive', `/healthz did not answer 200 within ${opts.answerTimeoutMs} ms (waited ${Date.now() - t} ms)`, undefined, run.lastInputs.last(20));
    });
  }, 2000);
  const progress = setInterval(() => opts.progress(progressLine(run, opts, generator, bystander, server, startedAt)), opts.progressMs);

  // The scheduler: a token bucket of `rate` inputs a second with a 50 ms burst. An input that finds
  // no free connection of its kind waits in a short queue (it is not skipped, so the inputs depend
  // only on the seed) while later inputs that can go, go.
  const pending: Array<{ input: Input; fromSweep: boolean }> = [];
  /** Scheduler turns spent with the queue full, by the lane of its oldest input: what limited the rate. */
  const waiting = new Tally();
  let sweepSent = 0;
  let budget = 0;
  let last = performance.now();
  const burst = Math.max(1, opts.rate * 0.05);
  const trySend = (item: { input: Input; fromSweep: boolean }): boolean => {
    if (!dispatch(item.input)) return false;
    run.counts.inputs++;
    if (item.fromSweep) sweepSent++;
    budget -= 1;
    return true;
  };
  while (!finished()) {
    const now = performance.now();
    budget = Math.min(budget + ((now - last) * opts.rate) / 1000, burst);
    last = now;
    for (let i = 0; i < pending.length && budget >= 1 && !finished(); ) {
      if (trySend(pending[i]!)) pending.splice(i, 1);
      else i++;
    }
    if (pending.length >= MAX_PENDING) waiting.inc(laneOf(pending[0]!.input));
    while (budget >= 1 && pending.length < MAX_PENDING && !finished()) {
      const item = generator.next();
      if (!trySend(item)) pending.push(item);
    }
    await sleep(5);
  }

  // Wind down: let what is in flight finish, the bystander catch up, then measure.
  await waitUntil(() => inflight.first + inflight.http + inflight.raw === 0 || run.serverGone, 3000);
  // Checks still running on a connection (after a disconnect call) get to finish.
  await waitUntil(() => pool.all().every((a) => !a.isHeld()) || run.serverGone, opts.answerTimeoutMs + 500);
  await bystander.drain(run.serverGone ? 0 : 5000);
  const now = Date.now();
  for (const a of pool.all()) a.checkTimeouts(now, opts.answerTimeoutMs);
  clearInterval(checker);
  clearInterval(health);
  clearInterval(progress);
  run.finishing = true;
  httpAgent.destroy();
  const healthzAfter = !run.serverGone && (await healthy(server.baseUrl, opts.answerTimeoutMs));
  const rssAfter = procMemory(server.pid, 'VmRSS') ?? null;
  const rssPeak = procMemory(server.pid, 'VmHWM') ?? null;
  if (rssBefore !== null && rssAfter !== null && rssAfter - rssBefore > opts.rssGrowthLimitBytes) {
    run.anomaly('rss-growth', `server RSS grew from ${mb(rssBefore)} to ${mb(rssAfter)} MB over the run`);
  }
  pool.stop();
  for (const a of firstConns) a.destroy();
  bystander.close();
  if (!run.serverGone) {
    shuttingDown = true;
    const exit = await server.stop();
    if (exit.code !== 0) run.anomaly('shutdown', `after SIGTERM the server exited with code ${exit.code}, signal ${exit.signal}`);
  }

  const bystanderReport = bystander.report();
  const summary: FuzzSummary = {
    ok: crash === undefined && bystanderReport.lost === 0 && bystanderReport.gaps === 0 && bystanderReport.closed === null && healthzAfter,
    seed: opts.seed,
    durationMs: Date.now() - startedAt,
    crashes: crash ? 1 : 0,
    crash: crash
      ? { code: crash.code, signal: crash.signal, atMs: crash.atMs, lastInputs: run.lastInputs.last(6).map((r) => r.label), serverOutput: fatalOutput(server.outputTail()), reproducer: undefined }
      : null,
    inputs: {
      total: run.counts.inputs,
      sweep: sweepSent,
      sweepComplete: generator.sweepDone && sweepSent === generator.sweepGenerated,
      wsMessages: run.counts.wsMessages,
      wsControl: run.counts.wsControlInputs,
      firstFrames: run.counts.firstFrames,
      http: run.counts.httpRequests,
      raw: run.counts.rawConnections,
      autoReplies: run.counts.autoReplies,
    },
    limitedBy: waiting.sorted(),
    wsFramesSent: run.counts.wsFrames,
    wsBytesSent: run.counts.wsBytes,
    connectionsOpened: run.counts.connectionsOpened,
    closes: run.closes.sorted(),
    droppedWithoutCloseFrame: run.dropped.sorted(),
    errors: run.errors.sorted(),
    http: run.http.sorted(),
    rawAndUpgrades: run.upgrades.sorted(),
    rss: { beforeBytes: rssBefore, afterBytes: rssAfter, peakBytes: rssPeak },
    bystander: bystanderReport,
    healthzAfter,
    anomalies: run.anomalies.counts.sorted(),
    report: opts.out,
  };
  const report: Report = {
    summary,
    options: { seed: opts.seed, engine: opts.engine, set: opts.set, limit },
    ...(crash ? { crash: { exit: crash, serverOutput: server.outputTail().slice(-16_000) } } : {}),
    anomalies: run.anomalies.kept,
    lastInputs: run.lastInputs.last(200),
  };
  writeFileSync(opts.out, JSON.stringify(report, null, 1));

  if (crash && opts.minimize && report.crash) {
    opts.progress(`fuzz: the server crashed; replaying the last ${opts.minimizeTries} inputs one at a time against fresh servers to find a reproducer`);
    const found = await minimize(run.lastInputs.last(opts.minimizeTries), { engine: opts.engine, set: opts.set, ...(opts.cli ? { cli: opts.cli } : {}) }, opts.progress);
    if (found) {
      report.crash.reproducer = found;
      summary.crash!.reproducer = `${found.label} (input #${found.seq}; replay with: npm run fuzz -- --replay ${opts.out})`;
      writeFileSync(opts.out, JSON.stringify(report, null, 1));
    }
  }
  return summary;
}

function laneOf(input: Input): string {
  return input.lane === 'ws' ? `ws-${input.auth}` : input.lane;
}
