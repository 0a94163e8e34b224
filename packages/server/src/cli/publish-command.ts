/** `herald publish`: one message from flags, or many from a JSON Lines file, through the HTTP API. */
import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { CliError, describe, FAILURE, parseJson, USAGE } from './fail.js';

/** Most messages `POST /api/v1/publish/batch` takes in one request. */
const BATCH_LIMIT = 1000;

interface PublishOptions {
  url: string;
  key?: string;
  channel?: string;
  user?: string;
  broadcast?: boolean;
  filter?: string;
  event?: string;
  data: string;
  msgId?: string;
  delivery?: string;
  receipts?: boolean;
  batch?: string;
}

async function post(url: string, key: string | undefined, path: string, body: unknown): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(new URL(path, url.endsWith('/') ? url : `${url}/`), {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
      body: JSON.stringify(body),
    });
  } catch (err) {
    throw new CliError(`cannot reach ${url}: ${describe(err)}`, FAILURE);
  }
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (!res.ok) {
    const error = (parsed as { error?: { code?: string; message?: string } } | undefined)?.error;
    throw new CliError(`${res.status} ${error?.code ?? res.statusText}: ${error?.message ?? text.slice(0, 200)}`, FAILURE);
  }
  return parsed;
}

function messageFromFlags(opts: PublishOptions): Record<string, unknown> {
  if (!opts.event) throw new CliError('give --event (or --batch <file>)', USAGE);
  const targets = [opts.channel, opts.user, opts.broadcast].filter((t) => t !== undefined).length;
  if (targets !== 1) throw new CliError('give exactly one of --channel, --user or --broadcast', USAGE);
  const body: Record<string, unknown> = { eventType: opts.event, payload: parseJson('--data', opts.data) };
  if (opts.channel) body.channel = opts.channel;
  if (opts.user) body.user = opts.user;
  if (opts.broadcast) body.broadcast = true;
  if (opts.filter) body.filter = parseJson('--filter', opts.filter);
  if (opts.msgId) body.msgId = opts.msgId;
  if (opts.delivery) body.delivery = opts.delivery;
  if (opts.receipts) body.receipts = true;
  return body;
}

/** One publish request per non-blank line; flags given too (--delivery, --filter…) fill what a line leaves out. */
function messagesFromFile(file: string, opts: PublishOptions): Array<{ line: number; body: Record<string, unknown> }> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read ${file}: ${(err as Error).message}`, USAGE);
  }
  const defaults: Record<string, unknown> = {};
  if (opts.delivery) defaults.delivery = opts.delivery;
  if (opts.filter) defaults.filter = parseJson('--filter', opts.filter);
  if (opts.receipts) defaults.receipts = true;
  const out: Array<{ line: number; body: Record<string, unknown> }> = [];
  text.split('\n').forEach((raw, i) => {
    if (!raw.trim()) return;
    const value = parseJson(`${file} line ${i + 1}`, raw);
    if (!value || typeof value !== 'object' || Array.isArray(value)) throw new CliError(`${file} line ${i + 1}: expected a JSON object (a publish request)`, USAGE);
    out.push({ line: i + 1, body: { ...defaults, ...(value as Record<string, unknown>) } });
  });
  if (out.length === 0) throw new CliError(`${file} holds no messages`, USAGE);
  return out;
}

async function publish(opts: PublishOptions): Promise<void> {
  if (!URL.canParse(opts.url) || !/^https?:$/.test(new URL(opts.url).protocol)) throw new CliError(`--url must be an http:// or https:// URL, got "${opts.url}"`, USAGE);
  if (!opts.batch) {
    const result = await post(opts.url, opts.key, 'api/v1/publish', messageFromFlags(opts));
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return;
  }
  if (opts.channel || opts.user || opts.broadcast || opts.event || opts.msgId) {
    throw new CliError('--batch takes the audience, event and msgId from each line; give only --delivery, --filter or --receipts with it', USAGE);
  }
  const messages = messagesFromFile(opts.batch, opts);
  let refused = 0;
  let first = '';
  for (let i = 0; i < messages.length; i += BATCH_LIMIT) {
    const chunk = messages.slice(i, i + BATCH_LIMIT);
    const reply = (await post(opts.url, opts.key, 'api/v1/publish/batch', { messages: chunk.map((m) => m.body) })) as { results?: Array<{ error?: { code: string; message: string } }> };
    (reply.results ?? []).forEach((r, j) => {
      process.stdout.write(`${JSON.stringify({ line: chunk[j]!.line, ...r })}\n`);
      if (r.error) {
        refused++;
        first ||= `line ${chunk[j]!.line}: ${r.error.code}: ${r.error.message}`;
      }
    });
  }
  if (refused > 0) throw new CliError(`${refused} of ${messages.length} messages refused (first: ${first})`, FAILURE);
}

export function publishCommand(): Command {
  return new Command('publish')
    .description('publish through a running server\'s HTTP API: one message from flags, or --batch <file.jsonl>')
    .option('--url <url>', 'server base URL', 'http://127.0.0.1:8080')
    .option('-k, --key <apiKey>', 'API key (api.keys)', process.env.HERALD_API_KEY)
    .option('--channel <name>', 'publish to a channel')
    .option('--user <id>', 'send to one user\'s connections (and inbox)')
    .option('--broadcast', 'send to every connection')
    .option('--filter <json>', 'tag filter as JSON, e.g. \'{"tag":"plan","op":"eq","value":"pro"}\'')
    .option('-e, --event <eventType>', 'event type')
    .option('-d, --data <json>', 'payload as JSON', '{}')
    .option('--msg-id <id>', 'message id: a repeat within publish.idempotencyWindowMs is a duplicate, not a second message')
    .addOption(new Option('--delivery <mode>', 'delivery mode').choices(['at-most-once', 'at-least-once']))
    .option('--receipts', 'track per-recipient delivery (GET /api/v1/messages/{msgId}; at-least-once)')
    .option('--batch <file>', 'JSON Lines: one publish request per line, sent in order through /api/v1/publish/batch')
    .action(publish);
}
