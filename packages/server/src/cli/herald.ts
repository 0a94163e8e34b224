#!/usr/bin/env node
/**
 * The `herald` command: one module per command beside this file. It uses only the public APIs of
 * the server, the client and the protocol; this is the one place that reads `process.env` and
 * argv. Every failure ends as one line on stderr and a non-zero exit code (fail.ts).
 */
import { Command, CommanderError } from 'commander';
import { HERALD_VERSION } from '../server.js';
import { adminCommand } from './admin-command.js';
import { configCommand } from './config-command.js';
import { CliError, describe, FAILURE, oneLine, USAGE } from './fail.js';
import { publishCommand } from './publish-command.js';
import { serveCommand } from './serve-command.js';
import { subscribeCommand } from './subscribe-command.js';
import { tokenCommand } from './token-command.js';

const program = new Command();
program
  .name('herald')
  .description('Herald: millisecond message push over WebSocket')
  .version(HERALD_VERSION)
  .addCommand(serveCommand())
  .addCommand(configCommand())
  .addCommand(tokenCommand())
  .addCommand(publishCommand())
  .addCommand(subscribeCommand())
  .addCommand(adminCommand());

// Commander's own errors (unknown option, missing argument, bad choice) become CommanderErrors
// here instead of exiting, so they end like every other failure.
const quietly = (cmd: Command): void => {
  cmd.exitOverride().configureOutput({ outputError: () => {} });
  for (const sub of cmd.commands) quietly(sub);
};
quietly(program);

/**
 * The command path of what is running, for the message prefix (`herald config check: …`). The
 * server itself (`herald serve`) keeps the plain `herald: …` its supervisors' log filters know.
 */
function commandName(argv: readonly string[]): string {
  const names: string[] = ['herald'];
  let cmd: Command | undefined = program;
  for (const arg of argv.slice(2)) {
    const next: Command | undefined = cmd?.commands.find((c) => c.name() === arg || c.aliases().includes(arg));
    if (!next || next.name() === 'serve') break;
    names.push(arg);
    cmd = next;
  }
  return names.join(' ');
}

function exitWith(err: unknown): void {
  if (err instanceof CommanderError) {
    // --help and --version "fail" with exit code 0 after printing.
    if (err.exitCode === 0) return;
    process.stderr.write(`${commandName(process.argv)}: ${oneLine(err.message.replace(/^error: /, ''))}\n`);
    process.exitCode = USAGE;
    return;
  }
  process.stderr.write(`${commandName(process.argv)}: ${oneLine(describe(err))}\n`);
  process.exitCode = err instanceof CliError ? err.exitCode : FAILURE;
}

// A fault in a running command (an event handler of `subscribe`) still ends as one line. `serve`
// installs its own policy instead (drain, then exit for the supervisor).
if (process.argv[2] !== 'serve') {
  const fault = (err: unknown) => {
    exitWith(err);
    process.exit(process.exitCode ?? FAILURE);
  };
  process.on('uncaughtException', fault);
  process.on('unhandledRejection', fault);
}

try {
  await program.parseAsync(process.argv);
} catch (err) {
  exitWith(err);
}
