#!/usr/bin/env node
// Builds native/herald-send (the optional send(2) of the fan-out path, see
// src/server/transport/direct-send.ts) with node-gyp when its output is missing or older than its
// source. Run by `npm run build`. A failed build is reported loudly but does not fail the build:
// Herald then writes through socket.write, which is correct, only slower per delivery.
// SKIP_NATIVE_SEND=1 skips it (server.nativeSend=false turns the addon off at run time).
import { execFileSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'native', 'herald-send');
const output = join(dir, 'build', 'Release', 'herald_send.node');
const sources = [join(dir, 'src', 'herald_send.c'), join(dir, 'binding.gyp')];

if (process.env.SKIP_NATIVE_SEND === '1') process.exit(0);
const upToDate = existsSync(output) && sources.every((s) => statSync(s).mtimeMs <= statSync(output).mtimeMs);
if (upToDate) process.exit(0);

// npm puts its bundled node-gyp on PATH for scripts and names it in npm_config_node_gyp.
const gyp = process.env.npm_config_node_gyp;
const [command, args] = gyp ? [process.execPath, [gyp]] : ['node-gyp', []];
try {
  execFileSync(command, [...args, 'rebuild', '--directory', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
  console.log(`native send: built ${output}`);
} catch (err) {
  const detail = (err.stderr?.toString() ?? err.message).trim().split('\n').slice(-5).join('\n  ');
  console.warn(`\n!!! native send NOT built (Herald will write through socket.write, ≈ 25 % more CPU per delivery):\n  ${detail}\n  Needs python3, make and a C compiler (Debian: apt install python3 make g++).\n`);
}
