/**
 * Herald's event-loop delay, read from its own `/metrics` (prom-client's
 * `nodejs_eventloop_lag_p99_seconds`, whose histogram prom-client resets at every scrape, so each
 * reading covers the time since the previous one). The peers expose no metrics: they get none.
 */

const P99_LINE = /^nodejs_eventloop_lag_p99_seconds(?:\{[^}]*\})? ([0-9.eE+-]+)$/m;

export class LoopDelayProbe {
  private last: number | undefined;
  private inFlight = false;

  constructor(private readonly metricsUrl: string) {}

  /** Starts a scrape (at most one at a time); its result is the next `latestMs`. */
  scrape(): void {
    if (this.inFlight) return;
    this.inFlight = true;
    fetch(this.metricsUrl, { signal: AbortSignal.timeout(900) })
      .then((res) => res.text())
      .then((text) => {
        const match = P99_LINE.exec(text);
        this.last = match ? Number(match[1]) * 1000 : undefined;
      })
      .catch(() => {
        this.last = undefined;
      })
      .finally(() => {
        this.inFlight = false;
      });
  }

  /** p99 event-loop delay of the last completed scrape, ms. */
  get latestMs(): number | undefined {
    return this.last;
  }
}
