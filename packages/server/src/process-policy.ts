/**
 * The last resort for faults nothing else caught: `uncaughtException` and `unhandledRejection`.
 * Installed by `herald serve`, or by an embedder that owns its process and wants it — never by
 * the library on its own, since process-wide handlers belong to whoever owns the process.
 *
 * Faults are attributed where the connection is known: the read path catches every throw and
 * rejection of a frame's handling and closes that connection alone with 4004 (frame-handler.ts).
 * A fault that reaches the process has lost that context (on Node 20 only AsyncLocalStorage could
 * carry it, and its promise hooks would tax every promise of the fan-out path), so the process is
 * in an unknown state: continuing could lose or corrupt messages without anyone noticing. The
 * policy logs the fault at fatal level, gives the server a short bounded chance to close its
 * clients cleanly (they reconnect — to this node once restarted, or another — and recover from
 * history and the inbox), and exits non-zero so the supervisor (systemd, Kubernetes, the worker
 * primary of `server.workers`) starts a fresh process.
 */

export interface ProcessFaultPolicy {
  log: { fatal(obj: object, msg: string): void };
  /** Runs once, after the log line, e.g. the server's shutdown. The exit does not wait longer than `graceMs`. */
  beforeExit?: () => Promise<void> | void;
  /** Default 3000 ms. */
  graceMs?: number;
  /** Default `process.exit`. */
  exit?: (code: number) => void;
}

/** Exit status after an unhandled fault: EX_SOFTWARE (sysexits.h), "internal software error". */
export const FAULT_EXIT_CODE = 70;

/** Installs the handlers; returns a disposer that removes them. */
export function installProcessFaultPolicy(policy: ProcessFaultPolicy): () => void {
  const exit = policy.exit ?? ((code: number) => process.exit(code));
  let exiting = false;
  const onFault = (kind: 'uncaughtException' | 'unhandledRejection') => (err: unknown) => {
    if (exiting) {
      policy.log.fatal({ err, kind }, 'another unhandled fault while exiting');
      return;
    }
    exiting = true;
    policy.log.fatal({ err, kind }, 'unhandled fault: the process state is unknown; exiting so that it is restarted');
    const done = () => exit(FAULT_EXIT_CODE);
    setTimeout(done, policy.graceMs ?? 3000).unref();
    Promise.resolve()
      .then(policy.beforeExit)
      .then(done, done);
  };
  const onException = onFault('uncaughtException');
  const onRejection = onFault('unhandledRejection');
  process.on('uncaughtException', onException);
  process.on('unhandledRejection', onRejection);
  return () => {
    process.off('uncaughtException', onException);
    process.off('unhandledRejection', onRejection);
  };
}
