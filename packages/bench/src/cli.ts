/**
 * Stand-alone entry to the harness, for when Herald's own CLI is not built:
 *   node dist/bench/cli.js bench compare --smoke
 * Same commands as `herald bench …`.
 */
import { Command } from 'commander';
import { registerBenchCommand } from './cli/bench-command.js';

const program = new Command('herald-bench');
registerBenchCommand(program);
await program.parseAsync(process.argv);
