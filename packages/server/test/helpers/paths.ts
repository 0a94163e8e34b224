/** Where the server package's files are, for tests that start the built CLI or read shipped files. */
import { fileURLToPath } from 'node:url';

/** packages/server/ */
export const SERVER_ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The repository's root (README, docs/). */
export const REPO_ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
/** The built `herald` command. */
export const CLI = `${SERVER_ROOT}dist/cli/herald.js`;
/** A file of the server package, by its path inside it (`packages/server/configs/dev.json`, `packages/server/api/openapi.json`). */
export const serverFile = (path: string): string => `${SERVER_ROOT}${path}`;
