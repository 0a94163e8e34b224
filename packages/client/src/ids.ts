let counter = 0;

/** A unique id for msgIds and correlationIds: a UUID where available, else time + counter + randomness. */
export function newId(): string {
  const c = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto;
  // randomUUID exists only in secure contexts in browsers (https, localhost).
  if (typeof c?.randomUUID === 'function') return c.randomUUID();
  counter = (counter + 1) % 0x100000;
  return `${Date.now().toString(36)}-${counter.toString(36)}-${Math.random().toString(36).slice(2, 12)}`;
}
