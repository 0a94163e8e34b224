/** Herald's `herald` command as installed beside this package (the `herald` dependency's bin). */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const heraldPackage = createRequire(import.meta.url).resolve('herald/package.json');

/** The built CLI entry point of the `herald` package. */
export const HERALD_BIN = join(dirname(heraldPackage), 'dist', 'cli', 'herald.js');
