/**
 * The state every part of a run shares: where the server is, the message limit, the counters and
 * histograms of the report, the input log and the anomaly log.
 */
import { AnomalyLog, Ring, Tally, type AnomalyKind, type InputRecord } from './recorder.js';

export class RunState {
  readonly startedAt = Date.now();
  readonly closes = new Tally();
  readonly errors = new Tally();
  readonly http = new Tally();
  readonly upgrades = new Tally();
  /** Connections the server dropped without a close frame, by the kind of their last input. */
  readonly dropped = new Tally();
  readonly anomalies = new AnomalyLog();
  readonly lastInputs = new Ring<InputRecord>(200);
  readonly counts = {
    inputs: 0,
    wsMessages: 0,
    wsControlInputs: 0,
    wsFrames: 0,
    wsBytes: 0,
    firstFrames: 0,
    httpRequests: 0,
    rawConnections: 0,
    connectionsOpened: 0,
    autoReplies: 0,
  };
  /** The epoch last seen for each channel, by any attacker (for recover requests that succeed). */
  readonly epochs = new Map<string, string>();
  private readonly pairs = new Map<string, { outcome: string; rec: InputRecord }>();
  private seq = 0;
  /** Set when the server process has exited: nothing more is sent. */
  serverGone = false;
  /** Set when the run is over and what is still in flight gets cancelled. */
  finishing = false;

  constructor(
    readonly host: string,
    readonly port: number,
    /** `limits.maxMessageBytes` of the server under test. */
    readonly limit: number,
  ) {}

  elapsed(): number {
    return Date.now() - this.startedAt;
  }

  /** Logs an input about to be sent; `recent` (a connection's own log) gets it too. */
  record(rec: Omit<InputRecord, 'seq' | 'atMs'>, recent?: Ring<InputRecord>): InputRecord {
    const full: InputRecord = { seq: ++this.seq, atMs: this.elapsed(), ...rec };
    this.lastInputs.push(full);
    recent?.push(full);
    return full;
  }

  /** The answer to one half of a fast-path/fastify pair; a mismatch with the other half is an anomaly. */
  pairOutcome(pair: string, outcome: string, rec: InputRecord): void {
    const other = this.pairs.get(pair);
    if (!other) {
      this.pairs.set(pair, { outcome, rec });
      return;
    }
    this.pairs.delete(pair);
    if (other.outcome !== outcome) this.anomaly('path-mismatch', `the same publish got "${other.outcome}" (${other.rec.label}) and "${outcome}" (${rec.label})`, undefined, [other.rec, rec]);
  }

  anomaly(kind: AnomalyKind, message: string, conn?: { name: string; recent: Ring<InputRecord> }, inputs?: InputRecord[]): void {
    if (this.serverGone && kind !== 'crash') return; // everything fails after a crash; the crash is the finding
    this.anomalies.add({ kind, atMs: this.elapsed(), message, ...(conn ? { conn: conn.name } : {}), inputs: inputs ?? conn?.recent.last(12) ?? this.lastInputs.last(12) });
  }
}
