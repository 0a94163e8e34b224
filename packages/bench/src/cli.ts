#!/usr/bin/env node
/**
 * The `herald-bench` command: `herald-bench compare …` runs a scenario against Herald and the
 * peer servers, `herald-bench run <scenario>` against one server. See README.md.
 */
import { Command } from 'commander';
import { registerBenchCommands } from './cli/bench-command.js';

const program = new Command('herald-bench');
registerBenchCommands(program);
await program.parseAsync(process.argv);
