#!/usr/bin/env node
// Builds Herald's optional send(2) addon (packages/server/native/herald-send, used by src/transport/direct-send.ts).
// Run by `npm run build` and when the package is installed (`--install`: one quiet line if it
// cannot be built). Without it Herald writes through socket.write, correct but slower, and says so
// in its start-up log line.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildAddon } from './native-addon.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
buildAddon({
  dir: join(root, 'native', 'herald-send'),
  target: 'herald_send',
  source: 'herald_send.c',
  without: 'Herald will write through socket.write, correct but with more CPU per delivery',
  quiet: process.argv.includes('--install'),
});
