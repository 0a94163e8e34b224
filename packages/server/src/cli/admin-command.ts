/**
 * `herald admin hash-password`: the value for `admin.ui.passwordHash`. The password is read from
 * standard input (a pipe: its first line; a terminal: typed twice without echo), never from argv,
 * where it would land in shell history and `ps`.
 */
import { Command } from 'commander';
import { hashPassword } from '../http/admin-ui/password.js';
import { CliError, USAGE } from './fail.js';

/** Shorter passwords are refused: the hash slows guessing, it cannot make a short password strong. */
export const MIN_ADMIN_PASSWORD_LENGTH = 12;

async function readPiped(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '';
}

/** One line typed at the terminal with echo off. */
function readHidden(prompt: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdin = process.stdin;
    process.stderr.write(prompt);
    stdin.setRawMode(true);
    stdin.resume();
    let line = '';
    const onData = (data: Buffer) => {
      for (const ch of data.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return done(undefined);
        if (ch === '\u0003') return done(new CliError('cancelled'));
        if (ch === '\u007f' || ch === '\b') line = line.slice(0, -1);
        else line += ch;
      }
    };
    const done = (err: Error | undefined) => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
      if (err) reject(err);
      else resolve(line);
    };
    stdin.on('data', onData);
  });
}

export function adminCommand(): Command {
  const admin = new Command('admin').description('Admin web UI helpers');
  admin
    .command('hash-password')
    .description('Print an admin.ui.passwordHash for a password read from standard input (typed twice on a terminal)')
    .action(async () => {
      let password: string;
      if (process.stdin.isTTY) {
        password = await readHidden('Admin password: ');
        if ((await readHidden('Again: ')) !== password) throw new CliError('the two passwords differ', USAGE);
      } else {
        password = await readPiped();
      }
      if (password.length < MIN_ADMIN_PASSWORD_LENGTH) throw new CliError(`the password must be at least ${MIN_ADMIN_PASSWORD_LENGTH} characters`, USAGE);
      process.stdout.write(`${await hashPassword(password)}\n`);
    });
  return admin;
}
