/**
 * Real Redis topologies for tests, started from the `redis-server` on PATH: a Redis Cluster of
 * masters, and a Sentinel setup (master, replica, sentinels). Every process listens on a free
 * loopback port, keeps its files in a fresh temp dir, and is killed by its own PID in `stop()`.
 * When `redis-server` is missing the tests skip with a loud warning, and fail under CI=true.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './processes.js';
import { waitForValue } from './wait.js';

/** True when `redis-server` and `redis-cli` run; false (after a loud warning) when not; throws under CI=true. */
export function requireRedisServerBinary(): boolean {
  const ok = ['redis-server', 'redis-cli'].every((bin) => spawnSync(bin, ['--version'], { stdio: 'ignore' }).status === 0);
  if (ok) return true;
  const message = 'redis-server/redis-cli are not on PATH: install Redis 7 (e.g. `apt-get install redis-server`) to run the Redis Cluster and Sentinel tests';
  if (process.env.CI === 'true') throw new Error(`${message} (CI=true: failing instead of skipping)`);
  const bar = '!'.repeat(100);
  console.warn(`\n${bar}\n!!! SKIPPING REDIS CLUSTER/SENTINEL TESTS — ${message}\n${bar}\n`);
  return false;
}


/** One command on a short-lived connection (no retries, so a dead port fails fast). */
async function ask(port: number, password: string | undefined, ...args: string[]): Promise<unknown> {
  const r = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 1000, ...(password ? { password } : {}) });
  r.on('error', () => undefined);
  try {
    await r.connect();
    return await r.call(args[0]!, ...args.slice(1));
  } finally {
    r.disconnect();
  }
}

/**
 * Waits until a replica of the master has acknowledged everything the master had written. A
 * replica acknowledges once a second; on a loaded machine its link may also be re-syncing, so the
 * wait is long, and a timeout says what the master last reported.
 */
async function awaitReplicaCaughtUp(master: number, password: string | undefined): Promise<void> {
  const replication = async () => String(await ask(master, password, 'INFO', 'replication'));
  const written = Number(/master_repl_offset:(\d+)/.exec(await replication())![1]);
  let last = '';
  try {
    await waitForValue(async () => {
        last = await replication();
        const acked = [...last.matchAll(/slave\d+:[^\r\n]*state=online[^\r\n]*offset=(\d+)/g)].map((m) => Number(m[1]));
        return acked.some((o) => o >= written) ? true : undefined;
      }, 60_000, 'the replica to catch up');
  } catch (err) {
    throw new Error(`${(err as Error).message} (master ${master} wrote up to ${written}; its INFO replication: ${last.replace(/\r?\n/g, ' ')})`);
  }
}

class ProcessSet {
  readonly dir = mkdtempSync(join(tmpdir(), 'herald-redis-'));
  private readonly procs = new Map<number, ChildProcess>();
  private readonly logs = new Map<number, string>();

  /** Starts `redis-server <args>` and waits until it answers PING. Returns its PID. */
  async start(port: number, args: string[], password?: string): Promise<number> {
    const proc = spawn('redis-server', args, { cwd: this.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    const pid = proc.pid!;
    this.procs.set(port, proc);
    this.logs.set(port, '');
    const collect = (d: Buffer) => this.logs.set(port, (this.logs.get(port)! + String(d)).slice(-4000));
    proc.stdout!.on('data', collect);
    proc.stderr!.on('data', collect);
    await waitForValue(async () => ((await ask(port, password, 'PING')) === 'PONG' ? true : undefined), 20_000, `redis-server on port ${port} (log: ${this.logs.get(port)})`);
    return pid;
  }

  /** SIGKILL, so the process gets no chance to hand over anything (what a crash does). */
  async kill(port: number): Promise<void> {
    const proc = this.procs.get(port);
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    process.kill(proc.pid!, 'SIGKILL');
    await exited;
    this.procs.delete(port);
  }

  log(port: number): string {
    return this.logs.get(port) ?? '';
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.procs.keys()].map((p) => this.kill(p)));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface RedisClusterProcesses {
  /** `127.0.0.1:port` of every master as created, the seed list for `engine.redis.cluster.nodes`. */
  nodes: string[];
  /** The masters' ports as created (a failover changes who is master, not this list). */
  ports: number[];
  /** The port of the master that owns `key`'s slot. */
  ownerOf(key: string): Promise<number>;
  /** Waits until the replica of `key`'s master has acknowledged everything written so far. */
  awaitReplicaCaughtUp(key: string): Promise<void>;
  /**
   * SIGKILLs the master owning `key`'s slot and resolves once it is dead, with `promoted`: the port
   * of the replica the cluster puts in its place, once it has.
   */
  killOwner(key: string): Promise<{ killed: number; promoted: Promise<number> }>;
  stop(): Promise<void>;
}

/**
 * A Redis Cluster of `masters` masters with `replicasPerMaster` replicas each, all 16384 slots
 * assigned and `cluster_state:ok`. A 1 s node timeout lets a replica take over within seconds.
 */
export async function startRedisCluster(masters = 3, password?: string, replicasPerMaster = 0): Promise<RedisClusterProcesses> {
  const set = new ProcessSet();
  try {
    const ports: number[] = [];
    for (let i = 0; i < masters * (1 + replicasPerMaster); i++) ports.push(await freePort());
    const auth = [...(password ? ['--requirepass', password, '--masterauth', password] : []), '--cluster-node-timeout', '1000'];
    await Promise.all(
      ports.map((port) =>
        set.start(
          port,
          ['--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--dir', set.dir, ...auth],
          password,
        ),
      ),
    );
    const nodes = ports.map((p) => `127.0.0.1:${p}`);
    const create = spawnSync('redis-cli', [...(password ? ['-a', password, '--no-auth-warning'] : []), '--cluster', 'create', ...nodes, '--cluster-replicas', String(replicasPerMaster), '--cluster-yes'], { encoding: 'utf8', timeout: 30_000 });
    if (create.status !== 0) throw new Error(`redis-cli --cluster create failed: ${create.stdout}${create.stderr}`);
    for (const port of ports) {
      await waitForValue(async () => (String(await ask(port, password, 'CLUSTER', 'INFO')).includes('cluster_state:ok') ? true : undefined), 20_000, `cluster_state:ok on ${port}`);
    }
    // With replicas, `cluster_state:ok` can come before every replica has synced; a failover
    // test needs them in sync.
    if (replicasPerMaster > 0) {
      for (const port of ports) {
        await waitForValue(async () => {
          const info = String(await ask(port, password, 'INFO', 'replication'));
          return info.includes('role:master') || info.includes('master_link_status:up') ? true : undefined;
        }, 20_000, `node ${port} to be a master or a synced replica`);
      }
    }
    const masterPorts: number[] = [];
    for (const port of ports) if (String(await ask(port, password, 'INFO', 'replication')).includes('role:master')) masterPorts.push(port);
    const live = new Set(ports);
    const ownerOf = async (key: string, via = [...live][0]!) => {
      const slot = Number(await ask(via, password, 'CLUSTER', 'KEYSLOT', key));
      const shards = (await ask(via, password, 'CLUSTER', 'SLOTS')) as Array<[number, number, [string, number, ...unknown[]]]>;
      const owner = shards.find(([from, to]) => slot >= from && slot <= to);
      if (!owner) throw new Error(`no owner for slot ${slot}`);
      return Number(owner[2][1]);
    };
    return {
      nodes: masterPorts.map((p) => `127.0.0.1:${p}`),
      ports: masterPorts,
      ownerOf: (key) => ownerOf(key),
      awaitReplicaCaughtUp: async (key: string) => awaitReplicaCaughtUp(await ownerOf(key), password),
      async killOwner(key: string) {
        const old = await ownerOf(key);
        await set.kill(old);
        live.delete(old);
        const promoted = waitForValue(async () => {
            for (const port of live) {
              if (!String(await ask(port, password, 'CLUSTER', 'INFO')).includes('cluster_state:ok')) return undefined;
            }
            const now = await ownerOf(key);
            return now !== old ? now : undefined;
          }, 30_000, 'the cluster to promote a replica');
        promoted.catch(() => undefined); // the caller awaits it; this only keeps an early rejection handled
        return { killed: old, promoted };
      },
      stop: () => set.stopAll(),
    };
  } catch (err) {
    await set.stopAll();
    throw err;
  }
}

export interface RedisSentinelProcesses {
  masterName: string;
  /** `127.0.0.1:port` of every sentinel, the list for `engine.redis.sentinel.sentinels`. */
  sentinels: string[];
  masterPort: number;
  replicaPort: number;
  /** The port Sentinel currently names as master. */
  currentMasterPort(): Promise<number>;
  /**
   * Waits until the replica has acknowledged everything the master has written, so a test that
   * then kills the master can expect no loss (replication is asynchronous; see docs/cluster.md).
   */
  awaitReplicaCaughtUp(): Promise<void>;
  /** Resolves once nothing answers on `port` any more. */
  awaitMasterDown(port: number): Promise<void>;
  /** SIGKILLs the current master and resolves with the port Sentinel promoted in its place. */
  killMasterAndAwaitPromotion(): Promise<number>;
  stop(): Promise<void>;
}

export interface SentinelSetupOptions {
  sentinels?: number;
  /** requirepass/masterauth of master and replica. */
  password?: string;
  /** requirepass of the sentinels. */
  sentinelPassword?: string;
  masterName?: string;
}

/**
 * One master, one replica (`--replicaof`) and `sentinels` sentinels monitoring it with quorum 1,
 * a 1 s down-after and a short failover timeout so a test sees a promotion within seconds.
 */
export async function startRedisSentinel(opts: SentinelSetupOptions = {}): Promise<RedisSentinelProcesses> {
  const { password, sentinelPassword } = opts;
  const masterName = opts.masterName ?? 'herald-master';
  const set = new ProcessSet();
  try {
    const masterPort = await freePort();
    const replicaPort = await freePort();
    const auth = password ? ['--requirepass', password, '--masterauth', password] : [];
    const common = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--dir', set.dir, ...auth];
    await set.start(masterPort, ['--port', String(masterPort), ...common], password);
    await set.start(replicaPort, ['--port', String(replicaPort), '--replicaof', '127.0.0.1', String(masterPort), ...common], password);
    await waitForValue(async () => (String(await ask(replicaPort, password, 'INFO', 'replication')).includes('master_link_status:up') ? true : undefined), 20_000, 'the replica to sync');

    const sentinelPorts: number[] = [];
    for (let i = 0; i < (opts.sentinels ?? 1); i++) sentinelPorts.push(await freePort());
    for (const port of sentinelPorts) {
      const conf = join(set.dir, `sentinel-${port}.conf`);
      writeFileSync(
        conf,
        [
          `port ${port}`,
          'bind 127.0.0.1',
          `dir ${set.dir}`,
          `sentinel monitor ${masterName} 127.0.0.1 ${masterPort} 1`,
          `sentinel down-after-milliseconds ${masterName} 1000`,
          `sentinel failover-timeout ${masterName} 3000`,
          `sentinel parallel-syncs ${masterName} 1`,
          ...(password ? [`sentinel auth-pass ${masterName} ${password}`] : []),
          ...(sentinelPassword ? [`requirepass ${sentinelPassword}`, `sentinel sentinel-pass ${sentinelPassword}`] : []),
          '',
        ].join('\n'),
      );
      await set.start(port, [conf, '--sentinel'], sentinelPassword);
    }
    const currentMasterPort = async (): Promise<number> => {
      const addr = (await ask(sentinelPorts[0]!, sentinelPassword, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', masterName)) as [string, string];
      return Number(addr[1]);
    };
    // Every sentinel must know the replica and its peers before the master can die: they learn both
    // only through the master (its INFO, its hello channel). A sentinel that wins the election
    // without knowing the replica aborts the failover, and the next try comes 2 × failover-timeout
    // later — on a loaded machine that could repeat for as long as a test waits.
    for (const port of sentinelPorts) {
      await waitForValue(async () => {
        const replicas = (await ask(port, sentinelPassword, 'SENTINEL', 'REPLICAS', masterName)) as unknown[];
        const peers = (await ask(port, sentinelPassword, 'SENTINEL', 'SENTINELS', masterName)) as unknown[];
        return replicas.length > 0 && peers.length === sentinelPorts.length - 1 ? true : undefined;
      }, 30_000, `the sentinel on ${port} to see the replica and ${sentinelPorts.length - 1} other sentinel(s)`);
    }
    return {
      masterName,
      sentinels: sentinelPorts.map((p) => `127.0.0.1:${p}`),
      masterPort,
      replicaPort,
      currentMasterPort,
      awaitReplicaCaughtUp: async () => awaitReplicaCaughtUp(await currentMasterPort(), password),
      async awaitMasterDown(port: number) {
        await waitForValue(async () => ((await ask(port, password, 'PING').then(() => false, () => true)) ? true : undefined), 20_000, `port ${port} to refuse connections`);
      },
      async killMasterAndAwaitPromotion() {
        const old = await currentMasterPort();
        await set.kill(old);
        try {
          return await waitForValue(async () => {
              const now = await currentMasterPort();
              if (now === old) return undefined;
              const role = String(await ask(now, password, 'INFO', 'replication'));
              return role.includes('role:master') ? now : undefined;
            }, 30_000, 'Sentinel to promote a replica');
        } catch (err) {
          // What the sentinels were doing (votes, aborted failovers) is what explains a timeout.
          const logs = sentinelPorts.map((p) => `--- sentinel ${p}:\n${set.log(p)}`).join('\n');
          throw new Error(`${(err as Error).message}\n${logs}`);
        }
      },
      stop: () => set.stopAll(),
    };
  } catch (err) {
    await set.stopAll();
    throw err;
  }
}
