/** `herald token` (mint a test token) and `herald token verify` (check one against a config). */
import { Command } from 'commander';
import { decodeJwt, SignJWT } from 'jose';
import { TokenVerifier } from '../auth.js';
import { hmacSecretProblem } from '../config.js';
import { HeraldError } from '../errors.js';
import { WELL_KNOWN_SECRETS } from '../exposure.js';
import { loadConfig } from './config-command.js';
import { CliError, FAILURE, USAGE } from './fail.js';

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

const split = (s: string): string[] => s.split(',').map((x) => x.trim()).filter(Boolean);

interface MintOptions {
  user: string;
  secret?: string;
  config?: string;
  channels: string;
  publish: string;
  tag: string[];
  ttl: string;
}

async function mint(opts: MintOptions): Promise<void> {
  let secret = opts.secret;
  let issuer = '';
  let audience = '';
  if (opts.config) {
    // The server's loader refuses what the server would refuse (short secret, published secret beyond loopback).
    const { jwt } = loadConfig(opts.config, process.env).auth;
    if (!jwt.hmacSecret) throw new CliError(`${opts.config}: auth.jwt.hmacSecret is empty; this command signs HS256 tokens only`, USAGE);
    secret = jwt.hmacSecret;
    issuer = jwt.issuer;
    audience = jwt.audience;
  }
  if (!secret) throw new CliError('give --secret, --config or set HERALD_AUTH__JWT__HMAC_SECRET', USAGE);
  // A token signed with a secret the server refuses could never be verified.
  const problem = hmacSecretProblem(secret);
  if (problem) throw new CliError(`--secret ${problem}: the server refuses a shorter auth.jwt.hmacSecret`, USAGE);
  if (WELL_KNOWN_SECRETS.has(secret)) {
    process.stderr.write('warning: this is an example secret published with Herald; a server accepts it only while listening on loopback\n');
  }
  const ttl = Number(opts.ttl);
  if (!Number.isInteger(ttl) || ttl <= 0) throw new CliError('--ttl must be a whole number of seconds above 0', USAGE);
  const tags: Record<string, string> = {};
  for (const t of opts.tag) {
    const i = t.indexOf('=');
    if (i <= 0) throw new CliError(`--tag expects key=value, got "${t}"`, USAGE);
    tags[t.slice(0, i)] = t.slice(i + 1);
  }
  let builder = new SignJWT({ channels: split(opts.channels), publish: split(opts.publish), tags })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(opts.user)
    .setIssuedAt()
    .setExpirationTime(`${ttl}s`);
  if (issuer) builder = builder.setIssuer(issuer);
  if (audience) builder = builder.setAudience(audience);
  process.stdout.write(`${await builder.sign(new TextEncoder().encode(secret))}\n`);
}

function duration(seconds: number): string {
  const s = Math.abs(Math.round(seconds));
  const parts = [[Math.floor(s / 86400), 'd'], [Math.floor((s % 86400) / 3600), 'h'], [Math.floor((s % 3600) / 60), 'm'], [s % 60, 's']] as const;
  return parts.filter(([n]) => n > 0).map(([n, u]) => `${n}${u}`).join(' ') || '0s';
}

async function verify(jwt: string, opts: { config: string; json?: boolean }): Promise<void> {
  const config = loadConfig(opts.config, process.env);
  const verifier = new TokenVerifier(config.auth.jwt);
  if (!verifier.configured) throw new CliError(`${opts.config}: no key to verify tokens with (auth.jwt.hmacSecret, publicKeyFile, jwksFile or jwksUrl)`, FAILURE);
  try {
    await verifier.verify(jwt.trim());
  } catch (err) {
    if (!(err instanceof HeraldError)) throw err;
    let when = '';
    try {
      const exp = decodeJwt(jwt.trim()).exp;
      if (typeof exp === 'number') when = ` (exp ${new Date(exp * 1000).toISOString()}, ${duration(Date.now() / 1000 - exp)} ago)`;
    } catch {
      // Not decodable at all: the verifier's message says so.
    }
    throw new CliError(`token refused: ${err.code}: ${err.message}${err.code === 'token_expired' ? when : ''}`, FAILURE);
  }
  const claims = decodeJwt(jwt.trim());
  const now = Date.now() / 1000;
  const report = {
    valid: true,
    user: claims.sub,
    expiresAt: typeof claims.exp === 'number' ? new Date(claims.exp * 1000).toISOString() : null,
    expiresIn: typeof claims.exp === 'number' ? duration(claims.exp - now) : null,
    subscribe: (claims.channels as string[] | undefined) ?? [],
    publish: (claims.publish as string[] | undefined) ?? [],
    tags: (claims.tags as Record<string, unknown> | undefined) ?? {},
    alsoPublicChannels: [...config.channels.public],
  };
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(report)}\n`);
    return;
  }
  const list = (l: readonly string[]) => (l.length ? l.join(', ') : '(none)');
  process.stdout.write([
    'valid:     yes',
    `user:      ${report.user}`,
    `expires:   ${report.expiresAt ? `${report.expiresAt} (in ${report.expiresIn})` : 'never'}`,
    `subscribe: ${list(report.subscribe)}${report.alsoPublicChannels.length ? ` (and channels.public: ${list(report.alsoPublicChannels)})` : ''}`,
    `publish:   ${list(report.publish)}`,
    `tags:      ${Object.keys(report.tags).length ? JSON.stringify(report.tags) : '(none)'}`,
    '',
  ].join('\n'));
}

export function tokenCommand(): Command {
  const token = new Command('token').description('mint a test connection token (the default) or verify one against a config');
  token
    .command('mint', { isDefault: true })
    .description('mint an HS256 connection token for testing (`herald token --user alice …`)')
    .requiredOption('-u, --user <id>', 'the user id (sub)')
    .option('-s, --secret <secret>', 'HMAC secret (auth.jwt.hmacSecret)', process.env.HERALD_AUTH__JWT__HMAC_SECRET)
    .option('-c, --config <file>', 'take the secret (and issuer, audience) from this config file instead')
    .option('--channels <patterns>', 'comma-separated channel patterns allowed to subscribe', '')
    .option('--publish <patterns>', 'comma-separated channel patterns allowed to publish', '')
    .option('--tag <key=value>', 'a tag (repeatable)', collect, [])
    .option('--ttl <seconds>', 'lifetime in seconds', '3600')
    .action(mint);
  token
    .command('verify')
    .description('check a token as the server configured by --config would: valid? expires when? which user, channels, tags?')
    .argument('<jwt>', 'the token')
    .requiredOption('-c, --config <file>', 'the server\'s config file (HERALD_* variables are layered over it, as `herald serve` does)')
    .option('--json', 'print the result as one JSON object')
    .action(verify);
  return token;
}
