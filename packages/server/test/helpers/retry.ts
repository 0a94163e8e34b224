/** Retries an operation that fails while a failover is in progress, counting the failures. */
export async function retryUntilAccepted<T>(attempt: () => Promise<T>, timeoutMs: number, what: string): Promise<{ value: T; failures: number }> {
  const deadline = Date.now() + timeoutMs;
  let failures = 0;
  for (;;) {
    try {
      return { value: await attempt(), failures };
    } catch {
      failures++;
      if (Date.now() > deadline) throw new Error(`${what} never succeeded after the failover`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
