/**
 * Replaying recorded inputs against a fresh server: the exact bytes, on connections of the same
 * kind (re-authenticated the same way), in the same order. `minimize` replays a crash's last
 * inputs one at a time, newest first, and returns the first that crashes a fresh server alone.
 */
import { Agent } from 'node:http';
import { Attacker } from './attacker.js';
import type { InputRecord } from './recorder.js';
import { Rng } from './rng.js';
import { RunState } from './run-state.js';
import { sendHttp, sendRaw } from './senders.js';
import { startServer, type ServerExit, type StartOptions } from './server-process.js';
import { attackerClaims, messageLimit, mintToken } from './world.js';

export interface ReplayResult {
  crashed: boolean;
  exit?: ServerExit;
  serverOutput?: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function replay(records: InputRecord[], server: StartOptions, waitMs = 1500): Promise<ReplayResult> {
  const handle = await startServer(server);
  const run = new RunState('127.0.0.1', handle.port, messageLimit(server.set));
  const conns = new Map<string, Attacker>();
  const agent = new Agent({ keepAlive: true });
  try {
    for (const rec of records) {
      if (handle.exit) break;
      if (rec.target === 'ws' && rec.bytes) {
        let a = rec.conn ? conns.get(rec.conn) : undefined;
        if (!a || a.state === 'closed') {
          const kind = rec.connKind ?? 'anonymous';
          const withToken = kind === 'token' || kind === 'lazy';
          const index = Number(/^fuzz-u(\d+)$/.exec(rec.user ?? '')?.[1] ?? 0);
          a = new Attacker(run, withToken ? 'token' : kind, new Rng(rec.seq), withToken ? await mintToken(attackerClaims(index)) : undefined, rec.user);
          if (rec.conn) conns.set(rec.conn, a);
          if (!(await a.ready)) continue;
        }
        a.send({ label: rec.label, bytes: Buffer.from(rec.bytes, 'base64'), expect: 'any' });
      } else if (rec.target === 'http' && rec.http) {
        const h = rec.http;
        void sendHttp(run, { label: rec.label, method: h.method as 'GET' | 'POST', path: h.path, headers: h.headers, framing: h.framing, ...(h.body !== undefined ? { body: Buffer.from(h.body, 'base64') } : {}) }, agent, () => undefined, 10_000, rec);
      } else if (rec.target === 'raw' && rec.bytes) {
        void sendRaw(run, { label: rec.label, bytes: Buffer.from(rec.bytes, 'base64'), kind: rec.label.startsWith('upgrade') ? 'upgrade' : 'http' }, rec);
      }
      await sleep(2);
    }
    const exit = await Promise.race([handle.exited, sleep(waitMs).then(() => undefined)]);
    return exit ? { crashed: true, exit, serverOutput: handle.outputTail().slice(-8000) } : { crashed: false };
  } finally {
    run.finishing = true;
    for (const a of conns.values()) a.destroy();
    agent.destroy();
    if (!handle.exit) await handle.stop();
  }
}

/** The newest of `records` that crashes a fresh server on its own, if any. */
export async function minimize(records: InputRecord[], server: StartOptions, log: (line: string) => void): Promise<InputRecord | undefined> {
  for (const rec of [...records].reverse()) {
    const result = await replay([rec], server);
    log(`fuzz: replayed #${rec.seq} ${rec.label.slice(0, 100)} alone: ${result.crashed ? 'CRASHED' : 'no crash'}`);
    if (result.crashed) return rec;
  }
  return undefined;
}
