// Builds an optional native addon with node-gyp when its output is missing or older than its
// sources. A failed build is reported loudly but never fails: every addon has a JavaScript
// fallback. Used by Herald's own build-native.mjs (its send(2) path) and by herald-bench (the load
// generator's receive path). SKIP_NATIVE_SEND=1 skips every addon build.
import { execFileSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';

/**
 * @param {{ dir: string, target: string, source: string, without: string, quiet?: boolean }} addon
 *   dir: the addon's folder (binding.gyp, src/<source>); target: the .node name; without: what is
 *   lost when it is not built (printed on failure); quiet: one line instead of the node-gyp tail.
 * @returns {boolean} whether the addon is built and up to date
 */
export function buildAddon(addon) {
  if (process.env.SKIP_NATIVE_SEND === '1') return false;
  const output = join(addon.dir, 'build', 'Release', `${addon.target}.node`);
  const sources = [join(addon.dir, 'src', addon.source), join(addon.dir, 'binding.gyp')];
  if (existsSync(output) && sources.every((s) => statSync(s).mtimeMs <= statSync(output).mtimeMs)) return true;
  // npm puts its bundled node-gyp on PATH for scripts and names it in npm_config_node_gyp.
  const gyp = process.env.npm_config_node_gyp;
  const [command, args] = gyp ? [process.execPath, [gyp]] : ['node-gyp', []];
  const name = addon.dir.split(/[\\/]/).slice(-1)[0];
  try {
    execFileSync(command, [...args, 'rebuild', '--directory', addon.dir], { stdio: ['ignore', 'ignore', 'pipe'] });
    console.log(`native ${name}: built ${output}`);
    return true;
  } catch (err) {
    const detail = (err.stderr?.toString() ?? err.message).trim().split('\n').slice(-5).join('\n  ');
    if (addon.quiet) console.warn(`native ${name} not built (${addon.without}); it needs python3, make and a C compiler`);
    else console.warn(`\n!!! native ${name} NOT built (${addon.without}):\n  ${detail}\n  Needs python3, make and a C compiler (Debian: apt install python3 make g++).\n`);
    return false;
  }
}
