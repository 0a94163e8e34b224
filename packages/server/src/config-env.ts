/**
 * Configuration from the environment: `HERALD_LIMITS__MAX_CONNECTIONS=5000` sets
 * `limits.maxConnections`. Double underscores separate levels, and each level is the key in
 * UPPER_SNAKE_CASE. The names are derived from the schema (config-schema.ts), so every key has
 * one and no list of them is kept here.
 *
 * Every `HERALD_*` variable is either configuration or one of NON_CONFIG_VARIABLES; any other is
 * refused like an unknown key in a file, with the nearest valid name, so that a misspelt
 * variable cannot leave a limit or a secret silently at its default.
 */
import { ConfigError, coerce, refuseUnsafeKey, refuseUnsafeKeysIn, setPath, splitList } from './config-input.js';
import { closest, configKeys, ENV_PREFIX, envName, isStringList, keyForEnvName, keySegment } from './config-schema.js';

/**
 * `HERALD_*` variables that are not configuration, each read by one of Herald's own tools; they
 * may be set in the environment `herald serve` runs in (a shell, a script that starts it) and are
 * not refused. docs/configuration.md lists them.
 */
export const NON_CONFIG_VARIABLES: Readonly<Record<string, string>> = Object.freeze({
  HERALD_CONFIG: 'the config file `herald serve` reads when --config is not given',
  HERALD_API_KEY: 'the API key `herald publish` sends when --key is not given',
  HERALD_WORKER_INDEX: 'set by `herald serve` on the worker processes it starts (server.workers)',
  HERALD_URL: 'the server URL of the client example packages/client/examples/node-chat.mjs',
  HERALD_TOKEN: 'the token of the client example packages/client/examples/node-chat.mjs',
  HERALD_RUN_DIR: 'where packages/server/scripts/cluster-up.sh and cluster-down.sh keep PID files and logs',
  HERALD_NGINX_L4: 'packages/server/scripts/cluster-up.sh: also start the L4 listener',
  HERALD_NO_NGINX: 'packages/server/scripts/cluster-up.sh: start the nodes without nginx',
  HERALD_REDIS_URL: 'the Redis packages/server/scripts/cluster-up.sh checks before starting the nodes',
  HERALD_STOP_TIMEOUT: 'seconds packages/server/scripts/cluster-down.sh waits before KILL',
  HERALD_TEST_REDIS_URL: 'the Redis the test suite uses',
  HERALD_TEST_NATS_URL: 'the NATS server the test suite uses',
  HERALD_TEST_FAULT: 'the fault a test injects into a server process',
  HERALD_ADMIN_SCREENSHOTS: 'where the admin UI browser test writes its page screenshots (npm run -w herald screenshots:admin)',
});

let envNames: string[] | undefined;

/** Every configuration variable's name without the common `HERALD_` (each key, groups included), for "did you mean". */
function allEnvNames(): string[] {
  envNames ??= configKeys()
    .filter((k) => k.path.length > 1)
    .map((k) => envName(k.path).slice(ENV_PREFIX.length));
  return envNames;
}

/** The configuration layer that the `HERALD_*` variables in `env` give; other variables are ignored. */
export function configFromEnv(env: Record<string, string | undefined>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const unknown: string[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || value === undefined || Object.hasOwn(NON_CONFIG_VARIABLES, name)) continue;
    // Refuse a segment that could reach a prototype before anything else, whatever else is wrong with the name.
    const segments = name.slice(ENV_PREFIX.length).split('__').map(keySegment);
    segments.forEach((k, i) => refuseUnsafeKey(k, segments.slice(0, i)));
    const key = keyForEnvName(name);
    if (!key) {
      unknown.push(name);
      continue;
    }
    let parsed = coerce(value);
    refuseUnsafeKeysIn(parsed, key.path);
    if (typeof parsed === 'string' && isStringList(key.node)) parsed = splitList(parsed);
    setPath(out, key.path, parsed);
  }
  if (unknown.length > 0) {
    const problems = unknown.sort().map((name) => {
      const near = closest(name.slice(ENV_PREFIX.length), allEnvNames());
      return `${name}: not a configuration variable${near ? ` (did you mean ${ENV_PREFIX}${near}?)` : ''}`;
    });
    throw new ConfigError(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
  }
  return out;
}
