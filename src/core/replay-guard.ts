/**
 * Replay protection for proofs, keyed by `Y = hash_to_curve(secret)`.
 *
 * Three layers, checked in one synchronous step so two requests carrying
 * the same proof cannot both pass: proofs being redeemed right now (never
 * evicted, bounded by concurrency), a ring of proofs redeemed recently (the
 * fast path), and the wallet store's durable record of every redeemed `Y`
 * (survives restarts and eviction). Only proofs that reached the mint enter
 * the ring, so a flood of garbage tokens cannot push real payments out.
 */
import { TokenPendingError, TokenReplayedError } from './errors.ts';
import type { WalletStore } from './ports.ts';
import { FINGERPRINT_BYTES, ProofRing } from './proof-ring.ts';

/** Options of {@link ReplayGuard}. */
export interface ReplayGuardOptions {
  /** Redeemed proofs remembered in memory, oldest dropped first. Default 1,000,000. */
  readonly cacheSize?: number;
  /** Durable record consulted when memory has no answer. */
  readonly store: Pick<WalletStore, 'findRedeemed'>;
}

/** Where a refused proof was found: being redeemed, in memory, or stored. */
export type ReplayLayer = 'in_flight' | 'cache' | 'store';

/** Counters for metrics. */
export interface ReplayGuardStats {
  /** Redeemed proofs held in memory. */
  readonly cached: number;
  /** Proofs of redemptions running now. */
  readonly inflight: number;
  /** Claims refused since start, by the layer that knew a proof. */
  readonly refused: Readonly<Record<ReplayLayer, number>>;
}

export class ReplayGuard {
  readonly #redeemed: ProofRing;
  readonly #inflight = new Set<string>();
  readonly #store: Pick<WalletStore, 'findRedeemed'>;
  readonly #refused: Record<ReplayLayer, number> = {
    in_flight: 0,
    cache: 0,
    store: 0,
  };

  constructor(options: ReplayGuardOptions) {
    this.#redeemed = new ProofRing(options.cacheSize ?? 1_000_000);
    this.#store = options.store;
  }

  /**
   * Claims every `Y` for one redemption, or none: throws
   * `TokenPendingError` when another request holds one of them and
   * `TokenReplayedError` when one was redeemed before.
   */
  claim(ys: readonly string[]): void {
    if (ys.some((y) => this.#inflight.has(y))) {
      this.#refused.in_flight++;
      throw new TokenPendingError(
        'this token is being redeemed by another request',
      );
    }
    if (ys.some((y) => this.#redeemed.has(fingerprint(y)))) {
      this.#refused.cache++;
      throw new TokenReplayedError('this token was already redeemed');
    }
    const stored = this.#store.findRedeemed(ys);
    if (stored !== undefined) this.#refused.store++;
    if (stored?.pending) {
      throw new TokenPendingError(
        'an earlier redemption of this token is still being settled with the mint; retry later',
      );
    }
    if (stored) {
      throw new TokenReplayedError('this token was already redeemed');
    }

    for (const y of ys) this.#inflight.add(y);
  }

  /** The redemption is final (or the mint says spent): remember the Ys. */
  settle(ys: readonly string[]): void {
    for (const y of ys) {
      this.#inflight.delete(y);
      this.#redeemed.add(fingerprint(y));
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
      refused: { ...this.#refused },
    };
  }
}

/**
 * The in-memory key of a `Y` (compressed point, hex): its 32-byte
 * x-coordinate folded to 16 bytes. x is hash output, so the fold keeps it
 * uniform; a false match between two real proofs has probability 2^-128
 * per pair, and the store keeps the full `Y` regardless.
 */
export function fingerprint(y: string): Uint8Array {
  const point = Buffer.from(y, 'hex');
  const out = new Uint8Array(FINGERPRINT_BYTES);
  for (let i = 0; i < FINGERPRINT_BYTES; i++) {
    out[i] = point[1 + i]! ^ point[1 + FINGERPRINT_BYTES + i]!;
  }
  return out;
}
