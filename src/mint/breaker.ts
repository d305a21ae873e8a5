/**
 * A circuit breaker and a concurrency bound for one mint.
 *
 * A dead mint must not make every request wait the whole timeout: after
 * `failureThreshold` consecutive failures the circuit opens and requests
 * fail at once, without being sent. After a cooldown one probe is let
 * through; its success closes the circuit, its failure doubles the
 * cooldown (up to `maxCooldownMs`). A mint that answers, even with a
 * refusal, is alive: only transport failures and broken answers count.
 *
 * At most `maxConcurrent` requests are in flight to one mint; up to
 * `maxQueued` more wait, and beyond that requests are refused at once, so
 * a slow mint cannot pile up unbounded work in Paygress.
 */
import { MintUnavailableError } from '../core/errors.ts';

/** Options of {@link MintBreaker}. */
export interface MintBreakerOptions {
  /** Consecutive failures that open the circuit. Default 3. */
  readonly failureThreshold?: number;
  /** First cooldown of an open circuit, in ms. Default 2000. */
  readonly cooldownMs?: number;
  /** Longest cooldown after repeated failed probes, in ms. Default 30000. */
  readonly maxCooldownMs?: number;
  /** Requests in flight to the mint at most. Default 32. */
  readonly maxConcurrent?: number;
  /** Requests waiting for a slot at most. Default 256. */
  readonly maxQueued?: number;
  /** Clock in ms. Default `Date.now`. */
  readonly now?: () => number;
}

/** The state of the circuit, for logs and metrics. */
export type CircuitState = 'closed' | 'open' | 'half-open';

export class MintBreaker {
  readonly #threshold: number;
  readonly #baseCooldown: number;
  readonly #maxCooldown: number;
  readonly #maxConcurrent: number;
  readonly #maxQueued: number;
  readonly #now: () => number;
  #failures = 0;
  #openUntil = 0;
  #cooldown: number;
  #probing = false;
  #active = 0;
  readonly #waiting: Array<() => void> = [];

  constructor(options: MintBreakerOptions = {}) {
    this.#threshold = options.failureThreshold ?? 3;
    this.#baseCooldown = options.cooldownMs ?? 2000;
    this.#maxCooldown = options.maxCooldownMs ?? 30_000;
    this.#maxConcurrent = options.maxConcurrent ?? 32;
    this.#maxQueued = options.maxQueued ?? 256;
    this.#now = options.now ?? Date.now;
    this.#cooldown = this.#baseCooldown;
  }

  get state(): CircuitState {
    if (this.#failures < this.#threshold) return 'closed';
    return this.#now() < this.#openUntil ? 'open' : 'half-open';
  }

  /**
   * Runs `call` when the circuit lets it, counting its outcome;
   * `isFailure` says whether an error means the mint is unwell.
   */
  async run<T>(
    call: () => Promise<T>,
    isFailure: (err: unknown) => boolean,
  ): Promise<T> {
    let probe = this.#admit();
    if ((await this.#acquire()) && !probe) {
      // It waited for a slot, behind calls that may have opened the
      // circuit meanwhile: what it asks is not sent to a mint known down.
      try {
        probe = this.#admit();
      } catch (err) {
        this.#release();
        throw err;
      }
    }
    try {
      const result = await call();
      this.#succeeded();
      return result;
    } catch (err) {
      if (isFailure(err)) this.#failed(probe);
      else this.#succeeded();
      throw err;
    } finally {
      if (probe) this.#probing = false;
      this.#release();
    }
  }

  /** Throws when the circuit is open; true when this call is the probe. */
  #admit(): boolean {
    const state = this.state;
    if (state === 'closed') return false;
    if (state === 'half-open' && !this.#probing) {
      this.#probing = true;
      return true;
    }
    throw new MintUnavailableError(
      'mint circuit open after repeated failures; not contacting it until it recovers',
      { notSent: true },
    );
  }

  /** Takes a slot; true when it had to wait for one. */
  async #acquire(): Promise<boolean> {
    if (this.#active < this.#maxConcurrent) {
      this.#active++;
      return false;
    }
    if (this.#waiting.length >= this.#maxQueued) {
      throw new MintUnavailableError('too many requests waiting for the mint', {
        notSent: true,
      });
    }
    // The slot is handed over by #release, so #active stays counted.
    await new Promise<void>((resolve) => this.#waiting.push(resolve));
    return true;
  }

  #release(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#active--;
  }

  #succeeded(): void {
    this.#failures = 0;
    this.#cooldown = this.#baseCooldown;
  }

  #failed(probe: boolean): void {
    this.#failures++;
    if (probe) {
      this.#cooldown = Math.min(this.#cooldown * 2, this.#maxCooldown);
    }
    if (this.#failures >= this.#threshold) {
      this.#openUntil = this.#now() + this.#cooldown;
    }
  }
}
