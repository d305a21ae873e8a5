/**
 * Replay protection for proofs, keyed by `Y = hash_to_curve(secret)`.
 *
 * Three layers, checked in one synchronous step so two requests carrying
 * the same proof cannot both pass: proofs being redeemed right now (never
 * evicted, bounded by concurrency), an LRU of proofs redeemed recently (the
 * fast path), and the wallet store's durable record of every redeemed `Y`
 * (survives restarts and eviction). Only proofs that reached the mint enter
 * the LRU, so a flood of garbage tokens cannot push real payments out.
 */
import { LRUCache } from 'lru-cache';
import { TokenPendingError, TokenReplayedError } from './errors.ts';
import type { WalletStore } from './ports.ts';

/** Options of {@link ReplayGuard}. */
export interface ReplayGuardOptions {
  /** Entries kept in the in-memory LRU. Default 1,000,000. */
  readonly cacheSize?: number;
  /** Durable record consulted on an LRU miss. */
  readonly store: Pick<WalletStore, 'findRedeemed'>;
}

/** Counters for metrics. */
export interface ReplayGuardStats {
  readonly cached: number;
  readonly inflight: number;
  readonly hits: number;
}

export class ReplayGuard {
  readonly #redeemed: LRUCache<string, true>;
  readonly #inflight = new Set<string>();
  readonly #store: Pick<WalletStore, 'findRedeemed'>;
  #hits = 0;

  constructor(options: ReplayGuardOptions) {
    this.#redeemed = new LRUCache({ max: options.cacheSize ?? 1_000_000 });
    this.#store = options.store;
  }

  /**
   * Claims every `Y` for one redemption, or none: throws
   * `TokenPendingError` when another request holds one of them and
   * `TokenReplayedError` when one was redeemed before.
   */
  claim(ys: readonly string[]): void {
    if (ys.some((y) => this.#inflight.has(y))) {
      this.#hits++;
      throw new TokenPendingError(
        'this token is being redeemed by another request',
      );
    }
    if (ys.some((y) => this.#redeemed.has(y))) {
      this.#hits++;
      throw new TokenReplayedError('this token was already redeemed');
    }
    const stored = this.#store.findRedeemed(ys);
    if (stored?.pending) {
      this.#hits++;
      throw new TokenPendingError(
        'an earlier redemption of this token is still being settled with the mint; retry later',
      );
    }
    if (stored) {
      this.#hits++;
      throw new TokenReplayedError('this token was already redeemed');
    }

    for (const y of ys) this.#inflight.add(y);
  }

  /** The redemption is final (or the mint says spent): remember the Ys. */
  settle(ys: readonly string[]): void {
    for (const y of ys) {
      this.#inflight.delete(y);
      this.#redeemed.set(y, true);
    }
  }

  /** The redemption did not happen: let the payer try again. */
  release(ys: readonly string[]): void {
    for (const y of ys) this.#inflight.delete(y);
  }

  stats(): ReplayGuardStats {
    return {
      cached: this.#redeemed.size,
      inflight: this.#inflight.size,
      hits: this.#hits,
    };
  }
}
