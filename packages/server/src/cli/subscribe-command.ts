/**
 * `herald subscribe`: a @herald/client connection that prints every message as one JSON line on
 * stdout and its state changes on stderr. The client does the reconnect loop, acknowledgements,
 * duplicate suppression and recovery from the last position; this file only maps flags onto it.
 */
import { Command } from 'commander';
import { WebSocket } from 'ws';
import { HeraldClient, HeraldError, type Envelope, type MessageContext, type StreamPosition, type WebSocketConstructor } from '@herald/client';
import { CliError, FAILURE, USAGE } from './fail.js';

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

interface SubscribeOptions {
  url: string;
  token?: string;
  channel: string[];
  ack: boolean;
  reconnect: boolean;
  recover?: string;
}

/** `offset@epoch`, as printed in each message line's `position`. */
function parsePosition(raw: string): StreamPosition {
  const m = /^(\d+)@(.+)$/.exec(raw);
  if (!m) throw new CliError(`--recover expects offset@epoch (as printed in "position"), got "${raw}"`, USAGE);
  return { offset: Number(m[1]), epoch: m[2]! };
}

function subscribe(opts: SubscribeOptions): Promise<void> {
  if (!/^wss?:\/\//i.test(opts.url)) throw new CliError(`--url must be a ws:// or wss:// URL, got "${opts.url}"`, USAGE);
  const recover = opts.recover ? parsePosition(opts.recover) : undefined;
  if (recover && opts.channel.length !== 1) throw new CliError('--recover needs exactly one --channel', USAGE);
  let client: HeraldClient;
  try {
    client = new HeraldClient({
      url: opts.url,
      ...(opts.token ? { token: opts.token } : {}),
      WebSocket: WebSocket as unknown as WebSocketConstructor,
      reconnect: opts.reconnect ? undefined : false,
      // Without --ack nothing is acknowledged: at-least-once messages come back after delivery.ackTimeoutMs.
      ackMode: opts.ack ? 'auto' : 'manual',
      browserEvents: false,
      clientName: 'herald-cli',
    });
  } catch (err) {
    if (err instanceof HeraldError) throw new CliError(err.message, USAGE);
    throw err;
  }
  const print = (m: Envelope, ctx: MessageContext) => {
    const position = ctx.offset !== undefined && ctx.epoch !== undefined ? `${ctx.offset}@${ctx.epoch}` : undefined;
    process.stdout.write(`${JSON.stringify({ ...(ctx.channel ? { channel: ctx.channel } : {}), target: ctx.target, ...(position ? { position } : {}), ...m })}\n`);
  };
  const note = (line: string) => process.stderr.write(`${line}\n`);
  return new Promise<void>((resolve, reject) => {
    // A refused upgrade or a dead server closes with 1006 and no reason; the transport's error
    // (`connect ECONNREFUSED …`, `Unexpected server response: 403`) says why.
    let lastError = '';
    let everConnected = false;
    const why = (d: { code: number; reason: string }) => {
      const detail = d.reason || (d.code === 1006 ? lastError : '');
      return `${everConnected ? 'disconnected' : `cannot connect to ${opts.url}`}: ${d.code}${detail ? ` ${detail}` : ''}`;
    };
    client.on('error', (err) => {
      if (err.code === 'transport_error') lastError = err.message;
    });
    client.on('connected', () => {
      everConnected = true;
      lastError = '';
    });
    client.on('connected', (info) => note(`connected as ${info.user || '(anonymous)'} to ${info.node || 'herald'} (connection ${info.connectionId})`));
    client.on('reconnecting', (r) => {
      const state = client.state;
      note(`${state.status === 'reconnecting' ? `${why(state)}; ` : ''}reconnecting in ${r.delay} ms (attempt ${r.attempt})`);
    });
    client.on('recoveryFailed', (info) => note(`recovery failed on ${info.channel}: messages were lost while away`));
    client.on('message', print);
    client.on('disconnected', (d) => {
      if (d.willReconnect) {
        note(why(d));
        return;
      }
      client.close();
      reject(new CliError(`${why(d)}${opts.reconnect ? ' (the server says not to reconnect)' : ''}`, FAILURE));
    });
    for (const channel of opts.channel) {
      const sub = client.subscribe(channel, recover ? { recover } : {});
      sub.on('message', print);
      sub.on('subscribed', (info) => note(`subscribed to ${channel}${info.recovered === false ? ' (recovery incomplete)' : ''}`));
      sub.on('error', (err) => {
        client.close();
        reject(new CliError(`subscribe ${channel}: ${err.code}: ${err.message}`, FAILURE));
      });
    }
    const stop = () => {
      client.close();
      resolve();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    client.connect().catch((err: unknown) => {
      client.close();
      reject(new CliError(err instanceof HeraldError ? `${err.code}: ${err.message}` : String(err), FAILURE));
    });
  });
}

export function subscribeCommand(): Command {
  return new Command('subscribe')
    .description('connect, subscribe, and print each message as a JSON line (state on stderr); reconnects and recovers until interrupted')
    .option('--url <url>', 'WebSocket URL', 'ws://127.0.0.1:8080/ws')
    .option('-t, --token <jwt>', 'connection token (omit for anonymous)')
    .option('--channel <name>', 'channel to subscribe (repeatable); user and broadcast deliveries are printed too', collect, [])
    .option('--ack', 'acknowledge messages (at-least-once deliveries are then not sent again)', true)
    .option('--no-ack', 'never acknowledge (to watch the server retry)')
    .option('--reconnect', 'reconnect with backoff after a connection loss, recovering missed channel messages', true)
    .option('--no-reconnect', 'exit (code 1) when the connection ends')
    .option('--recover <offset@epoch>', 'with one --channel: start from this position (a message line\'s "position"), replaying what came after it')
    .action(subscribe);
}
