/**
 * The answers a listener is still working on. Shutdown waits for them
 * after it has closed the connections, so a payment whose caller was cut
 * off is recorded as owed before the store closes, not lost with it.
 */
export class InFlight {
  readonly #running = new Set<Promise<unknown>>();

  /** Tracks `work` until it settles. */
  track(work: Promise<unknown>): void {
    this.#running.add(work);
    const done = () => this.#running.delete(work);
    work.then(done, done);
  }

  /** Resolves once nothing tracked is running. */
  async idle(): Promise<void> {
    while (this.#running.size > 0) {
      await Promise.allSettled([...this.#running]);
    }
  }
}
