/**
 * The embedded engines do not load the cluster clients: ioredis and nats cost tens of MB of RSS
 * together (BENCHMARKS.md), so the engine factory (src/engine/index.ts) and the ingestors import them only when the configuration asks for
 * Redis or NATS. Checked in a fresh Node process, whose CommonJS module cache shows what loaded.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const SERVER = fileURLToPath(new URL('../dist/server.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'herald-loading-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function loadedWith(engine: string): { ioredis: boolean; nats: boolean } {
  const script = `
    import { createRequire } from 'node:module';
    const { startHerald } = await import(${JSON.stringify(SERVER)});
    const s = await startHerald({ overrides: { server: { host: '127.0.0.1', port: 0 }, engine: { type: ${JSON.stringify(engine)}, sqlite: { dataDir: ${JSON.stringify(join(dir, engine))} } }, log: { level: 'silent' } } });
    const keys = Object.keys(createRequire(import.meta.url).cache);
    await s.close();
    console.log(JSON.stringify({ ioredis: keys.some((k) => k.includes('/node_modules/ioredis/')), nats: keys.some((k) => k.includes('/node_modules/nats/')) }));
  `;
  return JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 }).trim().split('\n').pop()!) as { ioredis: boolean; nats: boolean };
}

describe('engine loading', () => {
  it('memory and SQLite start without loading ioredis or nats', () => {
    expect(loadedWith('memory')).toEqual({ ioredis: false, nats: false });
    expect(loadedWith('sqlite')).toEqual({ ioredis: false, nats: false });
  }, 60_000);

  it('the check sees a client that is loaded (the same probe, importing ioredis by hand)', () => {
    const script = `
      import { createRequire } from 'node:module';
      await import('ioredis');
      console.log(Object.keys(createRequire(import.meta.url).cache).some((k) => k.includes('/node_modules/ioredis/')));
    `;
    expect(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', cwd: fileURLToPath(new URL('..', import.meta.url)) }).trim()).toBe('true');
  });
});
