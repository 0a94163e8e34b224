import type { Disposer } from './events.js';

export interface ConnectivityHandlers {
  /** The browser regained network access. */
  online(): void;
  /** The browser lost network access. */
  offline(): void;
  /** The page became visible again. */
  visible(): void;
}

interface EventTargetLike {
  addEventListener(type: string, listener: () => void): void;
  removeEventListener(type: string, listener: () => void): void;
}

/** Whether the browser says it is offline (always false outside browsers). */
export function isOffline(): boolean {
  const nav = (globalThis as { navigator?: { onLine?: unknown } }).navigator;
  return nav?.onLine === false;
}

/**
 * Listens to `online`/`offline` on the window and `visibilitychange` on the document. Outside a
 * browser it does nothing. Returns a disposer that removes every listener.
 */
export function watchConnectivity(handlers: ConnectivityHandlers): Disposer {
  const g = globalThis as { window?: EventTargetLike; document?: EventTargetLike & { visibilityState?: string } };
  const win = g.window;
  const doc = g.document;
  if (!win || typeof win.addEventListener !== 'function') return () => {};
  const online = (): void => handlers.online();
  const offline = (): void => handlers.offline();
  const visibility = (): void => {
    if (doc?.visibilityState === 'visible') handlers.visible();
  };
  win.addEventListener('online', online);
  win.addEventListener('offline', offline);
  doc?.addEventListener('visibilitychange', visibility);
  return () => {
    win.removeEventListener('online', online);
    win.removeEventListener('offline', offline);
    doc?.removeEventListener('visibilitychange', visibility);
  };
}
