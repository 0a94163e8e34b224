/**
 * The one way tests wait: on a condition, never for a fixed time. A check is polled until it
 * holds; on timeout the error names what was awaited, so a failing test says what never happened.
 */

/** Resolves once `check` holds (it may be async); throws after `timeoutMs`, naming `what`. */
export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 5000, what = 'condition', intervalMs = 10): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      if (await check()) return;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const cause = lastError instanceof Error ? ` (last attempt: ${lastError.message})` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${cause}`);
    }
    await pause(intervalMs);
  }
}

/** Polls `probe` until it returns something other than `undefined`, and returns that. */
export async function waitForValue<T>(probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 5000, what = 'a value', intervalMs = 10): Promise<T> {
  let value: T | undefined;
  await waitFor(async () => (value = await probe()) !== undefined, timeoutMs, what, intervalMs);
  return value as T;
}

/**
 * A deliberate pause — for pacing load (publish N per second) or letting a test's own traffic
 * spread over time, never to wait for the system under test to do something.
 */
export function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
