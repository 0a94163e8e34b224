/**
 * The packages as a user gets them: `npm pack` of @herald/protocol, @herald/client and herald,
 * `npm install <the tarballs>` into an empty directory, then from there `npx herald serve` with
 * its defaults (only the secrets it cannot invent are given) and a script that imports
 * @herald/client, subscribes and receives a message published over the HTTP API. Also: the
 * declared types resolve through each package's `exports`, the native addon is compiled at
 * install where a toolchain exists, and where none does (PATH without python3, make and a C
 * compiler) the install script still succeeds and the start-up log says Herald writes through
 * socket.write.
 *
 * Runs on the built packages (`npm test` builds first). Dependencies come from the npm cache when
 * it has them (`--prefer-offline`). better-sqlite3 would otherwise compile SQLite at every run when
 * its prebuilt binary cannot be downloaded: the workspace's own build, for the same Node ABI, is
 * offered to its installer as a local prebuild (`npm_config_better_sqlite3_local_prebuilds`, a
 * documented prebuild-install setting); with another version it compiles as usual.
 */
import { spawn, spawnSync, type ChildProcess, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { tmpdir } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_KEY, makeToken, SECRET } from './helpers/server.js';
import { REPO_ROOT } from './helpers/paths.js';

const INSTALL_TIMEOUT_MS = 300_000;
let work: string;
let app: string;
const children: ChildProcess[] = [];

/** The environment of a user's shell: none of the npm_* variables `npm test` sets for itself. */
function userEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k) || /^npm_config_(cache|registry|userconfig)$/i.test(k)) env[k] = v;
  return { ...env, ...extra };
}

function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = userEnv()): SpawnSyncReturns<string> {
  const r = spawnSync(command, args, { cwd, env, encoding: 'utf8', timeout: INSTALL_TIMEOUT_MS });
  if (r.status !== 0) throw new Error(`${command} ${args.join(' ')} failed (${r.status ?? r.signal}):\n${r.stdout}\n${r.stderr}`);
  return r;
}

/** Whether `name` is an executable file on PATH. */
function onPath(name: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => dir && existsSync(join(dir, name)));
}

/** A local prebuild of the workspace's better-sqlite3, when it is built; its folder, or undefined. */
function sqlitePrebuilds(): string | undefined {
  const pkg = join(REPO_ROOT, 'node_modules', 'better-sqlite3');
  if (!existsSync(join(pkg, 'build', 'Release', 'better_sqlite3.node'))) return undefined;
  const { version } = JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')) as { version: string };
  const dir = join(REPO_ROOT, 'node_modules', '.cache', 'herald-pack-install');
  const file = join(dir, `better-sqlite3-v${version}-node-v${process.versions.modules}-${process.platform}-${process.arch}.tar.gz`);
  if (!existsSync(file)) {
    mkdirSync(dir, { recursive: true });
    run('tar', ['czf', file, '-C', pkg, 'build/Release/better_sqlite3.node'], REPO_ROOT);
  }
  return dir;
}

/** Starts `npx herald serve` in the install directory; resolves with the port and the log so far. */
async function serve(env: Record<string, string> = {}): Promise<{ proc: ChildProcess; port: number; log: () => string }> {
  // Own process group: npx runs herald as its child, and cleanup signals the whole group by our PID.
  const proc = spawn('npx', ['--no-install', 'herald', 'serve', '--host', '127.0.0.1', '--port', '0'], {
    cwd: app,
    env: userEnv({ HERALD_AUTH__JWT__HMAC_SECRET: SECRET, HERALD_API__KEYS: API_KEY, ...env }),
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  children.push(proc);
  let out = '';
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`herald did not start:\n${out}`)), 30_000);
    const onData = (d: Buffer) => {
      out += String(d);
      const m = /"port":(\d+).*Herald listening/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', onData);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`herald exited ${code}:\n${out}`));
    });
  });
  return { proc, port, log: () => out };
}

async function stop(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  process.kill(-proc.pid!, 'SIGTERM');
  await exited;
}

beforeAll(() => {
  if (!existsSync(join(REPO_ROOT, 'packages', 'server', 'dist', 'cli', 'herald.js'))) throw new Error('the packages are not built: run `npm run build` first');
  work = mkdtempSync(join(tmpdir(), 'herald-pack-'));
  const tarballs = join(work, 'tarballs');
  mkdirSync(tarballs);
  const packed = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', tarballs, '-w', '@herald/protocol', '-w', '@herald/client', '-w', 'herald'], REPO_ROOT).stdout) as { filename: string }[];
  app = join(work, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'herald-install-check', private: true, type: 'module' }));
  const prebuilds = sqlitePrebuilds();
  run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', ...packed.map((p) => join(tarballs, p.filename))], app,
    userEnv(prebuilds ? { npm_config_better_sqlite3_local_prebuilds: prebuilds } : {}));
}, INSTALL_TIMEOUT_MS);

afterAll(async () => {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      try {
        process.kill(-c.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the packed packages, installed into an empty directory', () => {
  it('declare their types through exports', () => {
    writeFileSync(join(app, 'check.ts'), [
      "import { HeraldClient, HeraldError as ClientError } from '@herald/client';",
      "import { ErrorCode, HeraldError, type ServerFrame } from '@herald/protocol';",
      "import { clientFramesSchema } from '@herald/protocol/schemas';",
      "import { startHerald, type HeraldServer } from 'herald';",
      "export const error: HeraldError = new ClientError(ErrorCode.INTERNAL, 'x');",
      "export const code: string = ErrorCode.INTERNAL;",
      'export type Parts = [HeraldClient, ServerFrame, HeraldServer, typeof startHerald, typeof clientFramesSchema];',
      '',
    ].join('\n'));
    const tsc = join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const r = spawnSync(process.execPath, [tsc, '--noEmit', '--strict', '--skipLibCheck', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--types', 'node', '--typeRoots', join(REPO_ROOT, 'node_modules', '@types'), 'check.ts'], { cwd: app, encoding: 'utf8' });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('compiled the native send addon at install (a toolchain is present)', (ctx) => {
    if (!(onPath('make') && (onPath('cc') || onPath('gcc') || onPath('clang')) && onPath('python3'))) {
      const message = 'no python3, make and C compiler on PATH: the install-time build of native/herald-send is not checked';
      if (process.env.CI === 'true') throw new Error(message);
      console.warn(`\n!!! SKIPPING: ${message}\n`);
      ctx.skip();
    }
    expect(existsSync(join(app, 'node_modules', 'herald', 'native', 'herald-send', 'build', 'Release', 'herald_send.node'))).toBe(true);
  });

  it('`npx herald serve` starts with its defaults; an @herald/client script receives a publish', async () => {
    const server = await serve();
    expect(server.log()).toContain('"engine":"sqlite"');
    expect(existsSync(join(app, 'data'))).toBe(true); // the default SQLite store, in the working directory

    writeFileSync(join(app, 'subscribe.mjs'), [
      "import WebSocket from 'ws';",
      "import { HeraldClient, HeraldError } from '@herald/client';",
      'const [url, token] = process.argv.slice(2);',
      'const client = new HeraldClient({ url, token, WebSocket });',
      "const sub = client.subscribe('news');",
      "sub.on('message', (msg) => { console.log(JSON.stringify({ received: msg.payload })); client.close(); });",
      "const same = [(await import('@herald/protocol')).HeraldError, (await import('herald')).HeraldError];",
      "if (same.some((c) => c !== HeraldError)) throw new Error('more than one HeraldError class');",
      'await client.connect();',
      'await sub.ready();',
      "console.log('subscribed');",
      '',
    ].join('\n'));
    const token = await makeToken({ sub: 'alice', channels: ['news'] });
    const script = spawn(process.execPath, ['subscribe.mjs', `ws://127.0.0.1:${server.port}/ws`, token], { cwd: app, env: userEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(script);
    let out = '';
    script.stderr!.on('data', (d: Buffer) => (out += String(d)));
    const exited = new Promise<number | null>((resolve) => script.once('exit', resolve));
    await new Promise<void>((resolve, reject) => {
      script.stdout!.on('data', (d: Buffer) => {
        out += String(d);
        if (out.includes('subscribed')) resolve();
      });
      void exited.then((code) => reject(new Error(`the client script exited ${code}:\n${out}`)));
    });
    const res = await fetch(`http://127.0.0.1:${server.port}/api/v1/publish`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ channel: 'news', eventType: 'headline', payload: { text: 'installed' } }),
    });
    expect(res.status).toBe(200);
    expect(await exited).toBe(0); // it exits once the message arrived and the client closed
    expect(out).toContain('{"received":{"text":"installed"}}');
    await stop(server.proc);
  });

  it('serves the bundled admin UI from the installed package when admin.ui.enabled', async () => {
    const server = await serve({ HERALD_ADMIN__UI__ENABLED: 'true' });
    const base = `http://127.0.0.1:${server.port}/admin`;
    const page = await fetch(base);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('/admin/assets/app.js');
    for (const asset of ['app.js', 'app.css']) expect((await fetch(`${base}/assets/${asset}`)).status, asset).toBe(200);
    expect(server.log()).not.toContain('not built');
    await stop(server.proc);
  });

  it('installs without a compiler; Herald then says once, at start, that it writes through socket.write', async () => {
    // A PATH with node, npm and the shell npm runs scripts with: no python3, make or C compiler.
    const bin = join(work, 'bin-without-toolchain');
    mkdirSync(bin);
    symlinkSync(process.execPath, join(bin, 'node'));
    for (const tool of ['npm', 'npx', 'sh']) {
      const found = (process.env.PATH ?? '').split(delimiter).map((d) => join(d, tool)).find((p) => existsSync(p));
      symlinkSync(found!, join(bin, tool));
    }
    const addon = join(app, 'node_modules', 'herald', 'native', 'herald-send', 'build');
    rmSync(addon, { recursive: true, force: true });
    // `npm rebuild` runs the package's install script as `npm install` does.
    const r = run(join(bin, 'npm'), ['rebuild', 'herald', '--foreground-scripts'], app, userEnv({ PATH: bin }));
    expect(r.stdout + r.stderr).toContain('native herald-send not built');
    expect(existsSync(join(addon, 'Release', 'herald_send.node'))).toBe(false);

    const server = await serve({ HERALD_SERVER__DEMO_PAGE: 'true' });
    const lines = server.log().split('\n').filter((l) => l.includes('socket.write'));
    expect(lines).toHaveLength(1);
    const line = JSON.parse(lines[0]!) as { level: number; fanoutWrites: string };
    expect(line.level).toBe(30); // info
    expect(line.fanoutWrites).toMatch(/^socket\.write \(native\/herald-send is not built/);
    // The demo page's client is the standalone bundle: no bare imports a browser could not resolve.
    const bundle = await fetch(`http://127.0.0.1:${server.port}/herald-client.js`);
    expect(bundle.status).toBe(200);
    expect(await bundle.text()).not.toContain('@herald/protocol');
    await stop(server.proc);
  });
});
