/** The harness's handle on a connector child process (connector.ts): spawn, ask, wait, stop. */
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { drainOutput, spawnNode, stopChild } from '../lib/child.js';
import type { ConnectorCommand, ConnectorEvent, ConnectSetup, OpsPhase } from './messages.js';

type Ev<K extends ConnectorEvent['ev']> = Extract<ConnectorEvent, { ev: K }>;

export class ConnectorProcess {
  private constructor(private readonly child: ChildProcess) {}

  get pid(): number {
    return this.child.pid ?? 0;
  }

  /** Starts the connector (pinned to `cpus` when given) and signs its tokens; resolves when it is ready. */
  static async start(setup: ConnectSetup, cpus: string | undefined, log: (line: string) => void): Promise<ConnectorProcess> {
    const script = fileURLToPath(new URL('./connector.js', import.meta.url));
    const child = spawnNode(script, [], { ipc: true, cpus, openFiles: setup.count + 256 });
    drainOutput(child, (line) => log(`connector: ${line}`));
    const c = new ConnectorProcess(child);
    try {
      await c.ask({ cmd: 'setup', setup }, 'ready', 120_000);
    } catch (error) {
      await c.close();
      throw error;
    }
    return c;
  }

  open(timeoutMs: number): Promise<Ev<'opened'>> {
    return this.ask({ cmd: 'open' }, 'opened', timeoutMs);
  }

  ops(phase: OpsPhase, timeoutMs: number): Promise<Ev<'ops'>> {
    return this.ask({ cmd: 'ops', phase }, 'ops', timeoutMs);
  }

  async close(): Promise<void> {
    if (this.child.connected) this.child.send({ cmd: 'close' } satisfies ConnectorCommand);
    await stopChild(this.child, 5000);
  }

  private ask<K extends ConnectorEvent['ev']>(cmd: ConnectorCommand, want: K, timeoutMs: number): Promise<Ev<K>> {
    return new Promise((resolve, reject) => {
      const done = (error: Error | undefined, value?: Ev<K>): void => {
        clearTimeout(timer);
        this.child.off('message', onMessage);
        this.child.off('exit', onExit);
        if (error) reject(error);
        else resolve(value!);
      };
      const onMessage = (raw: unknown): void => {
        const m = raw as ConnectorEvent;
        if (m.ev === 'failed') done(new Error(`connector: ${m.error}`));
        else if (m.ev === want) done(undefined, m as Ev<K>);
      };
      const onExit = (code: number | null): void => done(new Error(`connector exited (${code}) before ${want}`));
      const timer = setTimeout(() => done(new Error(`connector: no ${want} within ${timeoutMs} ms`)), timeoutMs);
      this.child.on('message', onMessage);
      this.child.once('exit', onExit);
      this.child.send(cmd);
    });
  }
}
