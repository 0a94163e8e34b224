/** `herald config check <file>` and `herald config init`. */
import { existsSync, writeFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { configFromEnv, ConfigError, readConfigFile, resolveConfig, type HeraldConfig } from '../config.js';
import { configWarnings } from './advice.js';
import { CliError, FAILURE, USAGE } from './fail.js';
import { maskSecrets } from './mask.js';
import { starterConfig, type Profile } from './starter.js';

/** Loads a config file the way `herald serve --config` does (defaults, file, HERALD_* variables); a ConfigError becomes a one-line failure. */
export function loadConfig(file: string, env: NodeJS.ProcessEnv | false): Readonly<HeraldConfig> {
  try {
    return resolveConfig(readConfigFile(file), env ? configFromEnv(env) : {});
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(err.message, FAILURE);
    throw err;
  }
}

export function configCommand(): Command {
  const config = new Command('config').description('check or create a configuration file');

  config
    .command('check')
    .description('validate a config file with the server\'s own rules, print the effective config (secrets masked) and warn about risky settings; exit 0 valid, 1 invalid')
    .argument('<file>', 'JSON config file')
    .option('--no-env', 'ignore HERALD_* environment variables (by default they are layered over the file, as `herald serve` does)')
    .action((file: string, opts: { env: boolean }) => {
      const effective = loadConfig(file, opts.env ? process.env : false);
      process.stdout.write(`${JSON.stringify(maskSecrets(effective), null, 2)}\n`);
      const warnings = configWarnings(effective);
      for (const w of warnings) process.stderr.write(`warning: ${w}\n`);
      process.stderr.write(`${file}: valid${warnings.length ? ` (${warnings.length} warning${warnings.length > 1 ? 's' : ''})` : ''}\n`);
    });

  config
    .command('init')
    .description('write a starter config (fresh secrets) for development or production; the meaning of each key goes to stderr')
    .addOption(new Option('--profile <profile>', 'dev or production').choices(['dev', 'production']).default('dev'))
    .option('-o, --out <file>', 'write to this file (mode 0600) instead of stdout')
    .option('-f, --force', 'overwrite an existing --out file')
    .action((opts: { profile: Profile; out?: string; force?: boolean }) => {
      const { config: starter, notes } = starterConfig(opts.profile);
      const text = `${JSON.stringify(starter, null, 2)}\n`;
      if (opts.out) {
        if (existsSync(opts.out) && !opts.force) throw new CliError(`${opts.out} exists; give --force to overwrite it`, USAGE);
        try {
          writeFileSync(opts.out, text, { mode: 0o600 });
        } catch (err) {
          throw new CliError(`cannot write ${opts.out}: ${(err as Error).message}`, FAILURE);
        }
      } else process.stdout.write(text);
      const width = Math.max(...notes.map(([k]) => k.length));
      process.stderr.write(`${opts.profile} profile${opts.out ? ` written to ${opts.out}` : ''}; keys set (all others take their defaults, docs/configuration.md):\n`);
      for (const [key, why] of notes) process.stderr.write(`  ${key.padEnd(width)}  ${why}\n`);
      process.stderr.write(`check it with: herald config check ${opts.out ?? '<file>'}\n`);
    });

  return config;
}
