/**
 * The answers a listener is still working on. Shutdown waits for them
 * after it has closed the connections, so a payment whose caller was cut
 * off is recorded as owed before the store closes, not lost with it.
 *
 * A count, not a set of promises: it is kept for every request, and with
 * the promise chain it replaced it cost the HTTP listener about an eighth
 * of its own CPU per refusal (bench/http-floor.ts).
 */
export class InFlight {
  #running = 0;
  #idle: (() => void)[] = [];

  /** One more answer under way; {@link end} it exactly once. */
  begin(): void {
    this.#running += 1;
  }

  /** An answer begun is done, written or abandoned. */
  end(): void {
    this.#running -= 1;
    if (this.#running > 0 || this.#idle.length === 0) return;
    const waiting = this.#idle;
    this.#idle = [];
    for (const resolve of waiting) resolve();
  }

  /** Tracks `work` until it settles. */
  track(work: Promise<unknown>): void {
    this.begin();
    const end = () => this.end();
    work.then(end, end);
  }

  /** Resolves once nothing begun is still running. */
  idle(): Promise<void> {
    if (this.#running === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }
}
