#!/usr/bin/env node
// Builds the optional native addons with node-gyp when an output is missing or older than its
// sources. Run by `npm run build`. A failed build is reported loudly but does not fail the build:
//   native/herald-send  the send(2) of Herald's fan-out path (src/server/transport/direct-send.ts);
//                       without it Herald writes through socket.write, correct but slower.
//   native/bench-recv   the load generator's receive path with kernel timestamps
//                       (bench/loadgen/native-recv.ts); without it `--client native` is refused.
// SKIP_NATIVE_SEND=1 skips both (server.nativeSend=false turns the send addon off at run time).
import { execFileSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', 'native');
const addons = [
  { dir: 'herald-send', target: 'herald_send', source: 'herald_send.c', without: 'Herald will write through socket.write, ≈ 25 % more CPU per delivery' },
  { dir: 'bench-recv', target: 'bench_recv', source: 'bench_recv.c', without: "the benchmark's --client native is unavailable" },
];

if (process.env.SKIP_NATIVE_SEND === '1') process.exit(0);
// npm puts its bundled node-gyp on PATH for scripts and names it in npm_config_node_gyp.
const gyp = process.env.npm_config_node_gyp;
const [command, args] = gyp ? [process.execPath, [gyp]] : ['node-gyp', []];

for (const addon of addons) {
  const dir = join(root, addon.dir);
  const output = join(dir, 'build', 'Release', `${addon.target}.node`);
  const sources = [join(dir, 'src', addon.source), join(dir, 'binding.gyp')];
  const upToDate = existsSync(output) && sources.every((s) => statSync(s).mtimeMs <= statSync(output).mtimeMs);
  if (upToDate) continue;
  try {
    execFileSync(command, [...args, 'rebuild', '--directory', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
    console.log(`native ${addon.dir}: built ${output}`);
  } catch (err) {
    const detail = (err.stderr?.toString() ?? err.message).trim().split('\n').slice(-5).join('\n  ');
    console.warn(`\n!!! native ${addon.dir} NOT built (${addon.without}):\n  ${detail}\n  Needs python3, make and a C compiler (Debian: apt install python3 make g++).\n`);
  }
}
