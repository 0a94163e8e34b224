/**
 * The load generator's native receive path (packages/bench/native/bench-recv): after the handshake, a
 * connection's descriptor is handed to one C thread that reads it with recvmsg(2) and the
 * kernel's receive timestamps. See the addon's header for what it records; this module only
 * loads it and gives it types. `nativeRecv()` is undefined when the addon is not built (`--client native` is then
 * refused with a message saying so).
 */
import { createRequire } from 'node:module';

export interface NativeRecv {
  /** Starts reading `fd` (libuv must no longer read it); `leftover` = bytes read past the last handled frame. 0 or −errno. */
  add(fd: number, id: number, dialect: number, leftover: Buffer): number;
  /** Stops reading `fd`; call before the socket is closed, so a reused descriptor number is never read. */
  remove(fd: number): void;
  /** Copies up to `ids.length` delivery records out, oldest first: connection id, seq, wire and arrival latency (ms). */
  drain(ids: Int32Array, seqs: Float64Array, wire: Float64Array, arrival: Float64Array): number;
  /** Copies out the connections that closed (id, close code; 1006 for EOF). */
  closes(ids: Int32Array, codes: Int32Array): number;
  /** pings answered, error frames, other frames, records dropped (ring full), reads, bytes. */
  counters(out: Float64Array): void;
  /** Ends the thread; descriptors stay open (JavaScript owns them). */
  stop(): void;
}

export const NATIVE_DIALECT = { herald: 0, socketio: 1 } as const;

function load(): NativeRecv | undefined {
  // The same relative path from src/ and dist/: both sit two levels below the package root.
  try {
    return createRequire(import.meta.url)('../../native/bench-recv/build/Release/bench_recv.node') as NativeRecv;
  } catch {
    return undefined; // not built
  }
}

let loaded: { addon: NativeRecv | undefined } | undefined;

/** The addon, loaded on first use (Herald's CLI registers the bench commands; `serve` must not load it). */
export function nativeRecv(): NativeRecv | undefined {
  loaded ??= { addon: load() };
  return loaded.addon;
}
