import { waitForValue } from './wait.js';

/** Retries an operation that fails while a failover is in progress, counting the failures. */
export async function retryUntilAccepted<T>(attempt: () => Promise<T>, timeoutMs: number, what: string): Promise<{ value: T; failures: number }> {
  let failures = 0;
  const value = await waitForValue(
    async () => {
      try {
        return { ok: await attempt() };
      } catch {
        failures++;
        return undefined;
      }
    },
    timeoutMs,
    `${what} to succeed after the failover`,
    100,
  );
  return { value: value.ok, failures };
}
