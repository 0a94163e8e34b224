/** Herald CLI nodes as child processes, for tests that kill and restart them. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';

import { CLI } from './paths.js';

export { CLI };

/** A port free right now on 127.0.0.1 (so a restarted node can take the same one). */
export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/**
 * Starts `herald serve --config <file>` and resolves once it logs that it is listening (the config
 * must log at info level). Every process started is pushed to `children` for cleanup.
 */
export async function startCliNode(configFile: string, children: ChildProcess[]): Promise<ChildProcess> {
  const proc = spawn(process.execPath, [CLI, 'serve', '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(proc);
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`node did not start: ${out}`)), 15_000);
    proc.stdout!.on('data', (d: Buffer) => {
      out += String(d);
      if (out.includes('Herald listening')) {
        clearTimeout(t);
        resolve();
      }
    });
    proc.stderr!.on('data', (d: Buffer) => (out += String(d)));
    proc.on('exit', (code) => reject(new Error(`node exited ${code}: ${out}`)));
  });
  return proc;
}
