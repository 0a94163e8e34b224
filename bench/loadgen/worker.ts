/**
 * A load-generator process: opens its share of WebSocket connections to the server under test,
 * subscribes each to the bench channel, then counts and timestamps every delivery with as little
 * work as possible (see frame-scan.ts). Driven by its parent over IPC (messages.ts).
 *
 * Per connection it tracks the next expected seq and the seqs skipped so far, so a late arrival
 * is told apart from a duplicate; loss is derived by the parent from the publisher's count.
 */
import WebSocket from 'ws';
import { RawWebSocket } from './raw-ws.js';
import { encodeHistogram, newLatencyHistogram } from '../lib/stats.js';
import { makeToken } from '../lib/token.js';
import { ackFrame, ackMsgId, findSentAt, findSeq, readNumber } from './frame-scan.js';
import type { FromWorker, OpenResult, ToWorker, WorkerConfig, WorkerReport } from './messages.js';

const histogram = newLatencyHistogram();
const clients: Client[] = [];
let deliveries = 0;
let unique = 0;
let duplicated = 0;
let outOfOrder = 0;
let maxSeq = 0;
let pings = 0;
let errorFrames = 0;
const ACK_DELAY_MS = Number(process.env.BENCH_ACK_DELAY_MS ?? 250);
let acks = 0;
let ackFrames = 0;
let open = 0;
const closedByCode: Record<string, number> = {};
const errors: string[] = [];
let cpuBase = process.cpuUsage();
let wallBase = performance.now();
const timeOrigin = performance.timeOrigin;

function send(msg: FromWorker): void {
  process.send?.(msg);
}

function noteError(text: string): void {
  if (errors.length < 5) errors.push(text);
}

/** What a Client needs of its socket; both `ws` and RawWebSocket provide it. */
interface ClientSocket {
  on(event: 'message', listener: (data: Buffer) => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
  once(event: 'open', listener: () => void): unknown;
  once(event: 'close', listener: (code: number) => void): unknown;
  send(text: string): void;
  terminate(): void;
}

function openSocket(url: string, config: WorkerConfig, localAddress: string | undefined): ClientSocket {
  if (config.client === 'raw') return new RawWebSocket(url, { localAddress });
  const ws = new WebSocket(url, {
    perMessageDeflate: false,
    skipUTF8Validation: true,
    handshakeTimeout: config.connectTimeoutMs,
    ...(localAddress ? { localAddress } : {}),
  });
  return ws as unknown as ClientSocket;
}

const PING_BYTES = Buffer.from('"ping"');
const HERALD_PONG = '{"type":"pong"}';

/** One connection: handshake state, then delivery accounting. */
class Client {
  private next = 1;
  private missing: Set<number> | undefined;
  private subscribed = false;
  private opened = false;
  private settle: ((error?: Error) => void) | undefined;
  /** Subscriptions still awaiting their reply. */
  private awaiting = 0;
  /** msgIds received in the current read, acknowledged together once it has been processed. */
  private pendingAcks: string[] | undefined;

  constructor(
    private readonly ws: ClientSocket,
    private readonly dialect: WorkerConfig['dialect'],
    private readonly token: string,
    private readonly channels: readonly string[],
  ) {}

  /** Resolves once subscribed (or connected, with no channel). */
  start(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.finish(new Error('handshake timeout')), timeoutMs);
      this.settle = (error) => {
        clearTimeout(timer);
        this.settle = undefined;
        if (error) {
          this.ws.terminate();
          reject(error);
        } else resolve();
      };
      this.ws.on('message', (data: Buffer) => this.onMessage(data));
      this.ws.once('open', () => {
        this.opened = true;
        open++;
        if (this.dialect === 'herald') this.ws.send(JSON.stringify({ type: 'connect', id: 1, token: this.token, client: 'herald-bench' }));
        // Socket.IO: wait for the Engine.IO open packet ('0{…}') before connecting the namespace.
      });
      this.ws.on('error', (error) => this.finish(error));
      this.ws.once('close', (code) => {
        if (this.opened) open--;
        if (this.subscribed) closedByCode[code] = (closedByCode[code] ?? 0) + 1;
        else this.finish(new Error(`closed during handshake (${code})`));
      });
    });
  }

  private finish(error?: Error): void {
    this.settle?.(error);
  }

  close(): void {
    this.ws.terminate();
  }

  private onMessage(data: Buffer): void {
    const seqAt = findSeq(data);
    if (seqAt >= 0) {
      // ACK even a delivery that beats the last `subscribed` reply, or it would be retransmitted.
      if (this.dialect === 'herald') this.ackIfAsked(data);
      if (this.subscribed) return this.onDelivery(data, seqAt);
    }
    if (this.dialect === 'herald') this.onHeraldControl(data);
    else this.onSocketIoControl(data);
  }

  /** Queues the msgId of an at-least-once delivery (`"ack":true`) for this read's ack frame. */
  private ackIfAsked(data: Buffer): void {
    const msgId = ackMsgId(data);
    if (msgId === undefined) return;
    // Like the SDK (`ackDelay`, default 250 ms), ACKs are gathered for a short while and leave in
    // one frame; BENCH_ACK_DELAY_MS=0 acknowledges each read's deliveries at once.
    if (this.pendingAcks) this.pendingAcks.push(msgId);
    else {
      this.pendingAcks = [msgId];
      if (ACK_DELAY_MS > 0) setTimeout(() => this.flushAcks(), ACK_DELAY_MS);
      else queueMicrotask(() => this.flushAcks());
    }
  }

  private onDelivery(data: Buffer, seqAt: number): void {
    const now = timeOrigin + performance.now();
    const seq = readNumber(data, seqAt);
    const sentAtAt = findSentAt(data, seqAt);
    const sentAt = sentAtAt < 0 ? NaN : readNumber(data, sentAtAt);
    deliveries++;
    if (sentAt === sentAt) {
      const us = Math.round((now - sentAt) * 1000);
      histogram.recordValue(us < 1 ? 1 : us);
    }
    if (seq > maxSeq) maxSeq = seq;
    if (seq === this.next) {
      this.next++;
      unique++;
    } else if (seq > this.next) {
      // Skipped seqs may still arrive late; remember them (bounded) to tell late from duplicate.
      const missing = (this.missing ??= new Set());
      for (let s = this.next; s < seq && missing.size < 100_000; s++) missing.add(s);
      this.next = seq + 1;
      unique++;
    } else if (this.missing?.delete(seq)) {
      outOfOrder++;
      unique++;
    } else {
      duplicated++;
    }
  }

  private flushAcks(): void {
    const ids = this.pendingAcks;
    this.pendingAcks = undefined;
    if (!ids) return;
    acks += ids.length;
    ackFrames++;
    this.ws.send(ackFrame(ids));
  }

  /** Sends every subscribe at once; `subscribed` once all are answered. */
  private subscribeAll(): void {
    if (this.channels.length === 0) {
      this.subscribed = true;
      this.finish();
      return;
    }
    this.awaiting = this.channels.length;
    this.channels.forEach((channel, i) => {
      if (this.dialect === 'herald') this.ws.send(JSON.stringify({ type: 'subscribe', id: 2 + i, channel }));
      else this.ws.send(`42${i}${JSON.stringify(['subscribe', channel])}`);
    });
  }

  private onSubscribed(): void {
    if (--this.awaiting > 0) return;
    this.subscribed = true;
    this.finish();
  }

  private onHeraldControl(data: Buffer): void {
    if (data.length < 64 && data.indexOf(PING_BYTES) >= 0) {
      pings++;
      this.ws.send(HERALD_PONG);
      return;
    }
    let frame: { type?: string; error?: { code?: string; message?: string } };
    try {
      frame = JSON.parse(data.toString('utf8')) as typeof frame;
    } catch {
      return noteError(`unparsable frame: ${data.subarray(0, 80).toString()}`);
    }
    switch (frame.type) {
      case 'connected':
        this.subscribeAll();
        return;
      case 'subscribed':
        this.onSubscribed();
        return;
      case 'error':
        errorFrames++;
        noteError(`error frame: ${frame.error?.code} ${frame.error?.message}`);
        if (!this.subscribed) this.finish(new Error(`error frame ${frame.error?.code}`));
        return;
      default:
        return;
    }
  }

  /** Engine.IO v4 packets: 0 open, 2 ping, 3 pong, 4 message; Socket.IO: 40 connect, 44 error, 43<id> ack. */
  private onSocketIoControl(data: Buffer): void {
    const text = data.toString('utf8');
    if (text === '2') {
      pings++;
      this.ws.send('3');
      return;
    }
    if (text.startsWith('0{')) {
      this.ws.send(`40${JSON.stringify({ token: this.token })}`);
    } else if (text.startsWith('40')) {
      this.subscribeAll();
    } else if (text.startsWith('43')) {
      this.onSubscribed();
    } else if (text.startsWith('44')) {
      errorFrames++;
      noteError(`socket.io connect error: ${text.slice(2, 120)}`);
      this.finish(new Error('socket.io connect error'));
    }
  }
}

function wsUrl(config: WorkerConfig, url: string): string {
  if (config.dialect === 'socketio') {
    const u = new URL(url);
    u.pathname = '/socket.io/';
    u.search = '?EIO=4&transport=websocket';
    return u.toString();
  }
  return url;
}

/** The channels connection `g` subscribes to. */
function channelsOf(config: WorkerConfig, g: number): string[] {
  const subs = config.subscriptions;
  if (!subs) return config.channel === '' ? [] : [config.channel];
  return subs.perConnection === 'all' ? subs.channels : [subs.channels[g % subs.channels.length]!];
}

/** The node connection `g` connects to (see WorkerConfig.urls). */
function nodeOf(config: WorkerConfig, g: number, urls: string[]): string {
  const subs = config.subscriptions;
  const k = subs?.perConnection === 'one' ? Math.floor(g / subs.channels.length) : g;
  return urls[k % urls.length]!;
}

async function openAll(config: WorkerConfig): Promise<OpenResult> {
  // Sign every token first so that the connection rate measures the server, not jose.
  const tokens: string[] = [];
  for (let i = 0; i < config.count; i++) tokens.push(await makeToken(config.secret, `user-${config.firstIndex + i}`));
  const urls = (config.urls && config.urls.length > 0 ? config.urls : [config.url]).map((u) => wsUrl(config, u));
  let nextIndex = 0;
  let connected = 0;
  let failed = 0;
  const started = performance.now();
  let lastDone = started;
  let lastTick = started;
  const lane = async (): Promise<void> => {
    while (nextIndex < config.count) {
      const i = nextIndex++;
      const localAddress = config.sourceAddresses[(config.firstIndex + i) % config.sourceAddresses.length];
      const g = config.firstIndex + i;
      const ws = openSocket(nodeOf(config, g, urls), config, localAddress);
      const client = new Client(ws, config.dialect, tokens[i]!, channelsOf(config, g));
      try {
        await client.start(config.connectTimeoutMs);
        clients.push(client);
        connected++;
      } catch (error) {
        failed++;
        noteError(`connection ${config.firstIndex + i}: ${error instanceof Error ? error.message : String(error)}`);
      }
      lastDone = performance.now();
      if (lastDone - lastTick >= 1000) {
        lastTick = lastDone;
        send({ ev: 'tick', deliveries, open });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(config.concurrency, config.count)) }, lane));
  return { connected, failed, elapsedMs: lastDone - started, errors: [...errors] };
}

function report(): WorkerReport {
  const cpu = process.cpuUsage(cpuBase);
  return {
    histogram: encodeHistogram(histogram),
    deliveries,
    unique,
    duplicated,
    outOfOrder,
    maxSeq,
    open,
    closedByCode,
    pings,
    errorFrames,
    acks,
    ackFrames,
    cpuMicros: cpu.user + cpu.system,
    wallMs: performance.now() - wallBase,
  };
}

let ticker: NodeJS.Timeout | undefined;

process.on('message', (msg: ToWorker) => {
  switch (msg.cmd) {
    case 'open':
      void openAll(msg.config).then((result) => {
        send({ ev: 'opened', result });
        ticker ??= setInterval(() => send({ ev: 'tick', deliveries, open }), 1000);
      });
      return;
    case 'measure':
      histogram.reset();
      deliveries = unique = duplicated = outOfOrder = pings = errorFrames = acks = ackFrames = 0;
      cpuBase = process.cpuUsage();
      wallBase = performance.now();
      return;
    case 'count':
      send({ ev: 'count', deliveries });
      return;
    case 'report':
      send({ ev: 'report', report: report() });
      return;
    case 'close':
      if (ticker) clearInterval(ticker);
      for (const c of clients) c.close();
      send({ ev: 'closed' });
      setTimeout(() => process.exit(0), 100);
      return;
  }
});
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
send({ ev: 'ready' });
