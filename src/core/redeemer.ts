/**
 * Redeeming a token: turning the payer's proofs into proofs the operator
 * owns, with the swap written ahead to the store so that no crash, timeout
 * or dropped connection can lose what the mint signed.
 *
 *   claim Ys → prepare swap → store.begin → on disk → swap at mint → store.complete
 *
 * When the mint's answer is lost, the outcome is settled by asking the mint
 * (NUT-07): inputs unspent means nothing happened and the payer may retry;
 * inputs spent means the swap ran and its outputs are recovered (NUT-09).
 */
import { randomUUID } from 'node:crypto';
import {
  MintUnavailableError,
  PaygressError,
  TokenPendingError,
  TokenReplayedError,
  toPaygressError,
} from './errors.ts';
import type {
  Clock,
  MintGateway,
  RedemptionRecord,
  WalletStore,
  WireProof,
} from './ports.ts';
import type { ReplayGuard } from './replay-guard.ts';
import type { ParsedToken } from './token.ts';

/** Options of {@link Redeemer}. */
export interface RedeemerOptions {
  readonly gateway: MintGateway;
  readonly store: WalletStore;
  readonly guard: ReplayGuard;
  readonly clock: Clock;
  /** Refuse proofs without a DLEQ proof (NUT-12). Default false. */
  readonly requireDleq?: boolean;
  /**
   * Released swaps past the late-swap window looked at by one settling
   * pass, at most. Default 100.
   */
  readonly expiredBatch?: number;
  /**
   * A clock that never jumps, in ms, for the late-swap window. Default
   * `performance.now`.
   */
  readonly monotonic?: () => number;
}

/** A finished redemption: the payment is final. */
export interface Redemption {
  readonly id: string;
  readonly mint: string;
  readonly unit: string;
  /** Value received after the mint's input fees. */
  readonly amount: number;
  /**
   * An owed payment's retry: the grant its answer that was lost gave,
   * which the retry buys again.
   */
  readonly grant?: string;
}

/**
 * How long after a release a late swap is looked for in the background, in
 * ms. A request still queued at the mint runs within seconds or not at all.
 */
const LATE_SWAP_WINDOW_MS = 10 * 60_000;

/**
 * How an unfinished redemption ended when it was settled: its swap ran and
 * its outputs are stored (`completed`), it did not run (`released`; and
 * `spent` when some of its inputs had been spent elsewhere first), or the
 * mint cannot say yet (`unsettled`).
 */
export type SettleOutcome = 'completed' | 'released' | 'spent' | 'unsettled';

export class Redeemer {
  readonly #gateway: MintGateway;
  readonly #store: WalletStore;
  readonly #guard: ReplayGuard;
  readonly #clock: Clock;
  readonly #requireDleq: boolean;
  readonly #expiredBatch: number;
  // Released swaps past the window the sweep under way passes over.
  #expiredSkip = 0;
  readonly #monotonic: () => number;
  readonly #startedAt: number;
  // When each swap this process set aside in the last window was, on the
  // monotonic clock (see #pastWindow).
  readonly #setAsideAt = new Map<string, number>();
  #settling: Promise<Record<SettleOutcome, number>> | undefined;

  constructor(options: RedeemerOptions) {
    this.#gateway = options.gateway;
    this.#store = options.store;
    this.#guard = options.guard;
    this.#clock = options.clock;
    this.#requireDleq = options.requireDleq ?? false;
    this.#expiredBatch = options.expiredBatch ?? 100;
    this.#monotonic = options.monotonic ?? (() => performance.now());
    this.#startedAt = this.#monotonic();
  }

  /**
   * Redeems the token at its mint, for a request that costs at least
   * `minimum` (after fees). Resolves only once the new proofs are in the
   * store, as being delivered (see `WalletStore.complete`); rejects with a
   * PaygressError saying why not.
   */
  async redeem(token: ParsedToken, minimum: number): Promise<Redemption> {
    try {
      return await this.#redeemOnce(token, minimum);
    } catch (err) {
      // The mint rotated its keys under us and refused our outputs; it
      // executed nothing, so prepare the swap again, once.
      if (err instanceof MintUnavailableError && err.retry) {
        return this.#redeemOnce(token, minimum);
      }
      throw err;
    }
  }

  async #redeemOnce(token: ParsedToken, minimum: number): Promise<Redemption> {
    try {
      this.#guard.claim(token.ys);
    } catch (err) {
      // Spent by us, but maybe for a request we refused while the mint's
      // answer was lost: then this retry gets what was paid for, once.
      const owed =
        err instanceof TokenReplayedError
          ? this.#store.deliver(token.ys, {
              mint: token.mint,
              unit: token.unit,
              minimum,
            })
          : undefined;
      if (owed === 'delivering') {
        throw new TokenPendingError(
          'an earlier request with this token is still being answered: send it again in a few seconds',
        );
      }
      if (owed === undefined) throw err;
      return owed;
    }

    let record: RedemptionRecord;
    try {
      const swap = await this.#gateway.prepareSwap(
        token.mint,
        token.unit,
        token.proofs,
        { requireDleq: this.#requireDleq },
      );
      record = {
        id: randomUUID(),
        mint: token.mint,
        unit: token.unit,
        amount: token.amount,
        ys: token.ys,
        swap,
        createdAt: this.#clock.now(),
      };
      this.#store.begin(record);
    } catch (err) {
      this.#guard.release(token.ys);
      throw toPaygressError(err);
    }
    try {
      // On disk before the swap leaves: if the mint signs and a power cut
      // follows, the outputs' secrets are what recovers the payment.
      await this.#store.durable();
    } catch (err) {
      // Never sent, and the token is still good.
      try {
        this.#store.release(record.id, true);
      } catch {
        // Left pending: the next settling finds its inputs unspent.
      }
      this.#guard.release(token.ys);
      throw toPaygressError(err);
    }

    return this.#swap(record, minimum);
  }

  /**
   * Settles a redemption whose outcome is unknown (the process died, or
   * the mint's answer was lost) by asking the mint about its inputs.
   */
  async settle(
    record: RedemptionRecord,
    inRequest = false,
  ): Promise<SettleOutcome> {
    const states = await this.#gateway.checkState(record.mint, record.ys);
    if (states.some((s) => s === 'PENDING')) return 'unsettled';

    if (states.every((s) => s === 'SPENT')) {
      const proofs = await this.#gateway.restoreSwap(
        record.mint,
        record.unit,
        record.swap,
      );
      if (proofs.length > 0) return this.#recovered(record, proofs, inRequest);
    }

    // A swap spends all its inputs at once and the mint signed none of its
    // outputs: it did not run. Inputs the mint holds as spent were spent
    // by someone else first (the payer, elsewhere), and are remembered so.
    // Kept aside all the same, for the late-swap window: a mint that marks
    // inputs spent before it stores the signatures would show this too.
    this.#setAside(record.id);
    const spent = record.ys.filter((_, i) => states[i] === 'SPENT');
    this.#guard.settle(spent);
    this.#guard.release(record.ys.filter((_, i) => states[i] !== 'SPENT'));
    return spent.length > 0 ? 'spent' : 'released';
  }

  /**
   * Settles every unfinished redemption in the store, and takes back those
   * released recently whose swap the mint ran after all (their payers are
   * owed their request); at start-up and periodically.
   */
  settleAll(): Promise<Record<SettleOutcome, number>> {
    // One pass at a time: a slow mint can make one outlast the interval
    // between them, and two would repeat each other's mint calls. A call
    // while one runs gets that one.
    this.#settling ??= this.#settleAll().finally(() => {
      this.#settling = undefined;
    });
    return this.#settling;
  }

  async #settleAll(): Promise<Record<SettleOutcome, number>> {
    const counts = { completed: 0, released: 0, spent: 0, unsettled: 0 };
    for (const record of this.#store.unfinished()) {
      const outcome = await this.settle(record).catch(
        (): SettleOutcome => 'unsettled',
      );
      counts[outcome]++;
    }

    const since = this.#clock.now() - LATE_SWAP_WINDOW_MS;
    for (const record of this.#store.released([], since)) {
      const late = await this.#lateSwap(record).catch(() => undefined);
      if (late === undefined) continue;
      try {
        this.#store.complete(record.id, late, false);
        counts.completed++;
      } catch {
        // Completed meanwhile by a retry of its token, or the store
        // failed: the next pass, or the last look, sees it again.
      }
    }
    for (const [id, at] of this.#setAsideAt) {
      if (this.#monotonic() - at > LATE_SWAP_WINDOW_MS) {
        this.#setAsideAt.delete(id);
      }
    }
    // Past the window, one last look, and what did not run never will:
    // nothing of it is kept (each is a page of the store). Those the mint
    // cannot settle yet are passed over by the next passes of the sweep,
    // so they do not hold up the rest; a sweep done, the next starts over.
    const expired = this.#store.releasedBefore(
      since,
      this.#expiredBatch,
      this.#expiredSkip,
    );
    let unsure = 0;
    for (const record of expired) {
      const settled =
        this.#pastWindow(record.id) &&
        (await this.#lastLook(record).then(
          () => true,
          () => false,
        ));
      if (!settled) unsure++;
    }
    this.#expiredSkip =
      expired.length < this.#expiredBatch ? 0 : this.#expiredSkip + unsure;
    return counts;
  }

  /** Releases a swap that may still run, kept aside for the window. */
  #setAside(id: string): void {
    this.#store.release(id);
    this.#setAsideAt.set(id, this.#monotonic());
  }

  /**
   * Whether a swap has been set aside for the whole late-swap window on
   * the monotonic clock. The wall clock its release time is written in can
   * step forward (NTP, a VM resumed, another node), and a swap still
   * queued at the mint taken as past the window would be forgotten, then
   * run: the money lost. One set aside before this process started counts
   * from the start.
   */
  #pastWindow(id: string): boolean {
    const at = this.#setAsideAt.get(id) ?? this.#startedAt;
    return this.#monotonic() - at > LATE_SWAP_WINDOW_MS;
  }

  /**
   * Completes a released swap the mint ran after all; forgets one it did
   * not run, past the late-swap window. Rejects while unsure (a proof
   * pending, the mint unreachable or not restoring): it stays for a later
   * pass.
   */
  async #lastLook(record: RedemptionRecord): Promise<void> {
    const late = await this.#lateSwap(record);
    if (late === undefined) {
      this.#store.release(record.id, true);
    } else {
      this.#store.complete(record.id, late, false);
      this.#guard.settle(record.ys);
    }
  }

  /**
   * The outputs of a released swap, if the mint ran it after all; none
   * if it did not. Rejects while the mint cannot say: a proof pending.
   */
  async #lateSwap(record: RedemptionRecord): Promise<WireProof[] | undefined> {
    const states = await this.#gateway.checkState(record.mint, record.ys);
    if (states.some((s) => s === 'PENDING')) {
      throw new Error('a proof of the swap is pending at the mint');
    }
    if (!states.every((s) => s === 'SPENT')) return undefined;
    const proofs = await this.#gateway.restoreSwap(
      record.mint,
      record.unit,
      record.swap,
    );
    return proofs.length > 0 ? proofs : undefined;
  }

  /**
   * Recovers earlier swaps of ours, released as not run, that spent any of
   * `current`'s inputs after all. Their payment buys the current request
   * only when it is the very token that paid (the same inputs, mint and
   * unit) and worth at least `minimum`; otherwise it stays owed to that
   * token. With `includeCurrent`, `current` itself is among them, and
   * `unrun` says whether the mint holds none of its outputs as signed.
   */
  async #recoverReleased(
    current: RedemptionRecord,
    minimum: number,
    includeCurrent = false,
  ): Promise<{ paid: Redemption | undefined; unrun: boolean }> {
    let paid: Redemption | undefined;
    let unrun = false;
    for (const record of this.#store.released(current.ys)) {
      if (record.id === current.id && !includeCurrent) continue;
      // One that cannot be restored now is left for the periodic late-swap
      // pass; it must not cost the payment already found.
      const proofs = await this.#gateway
        .restoreSwap(record.mint, record.unit, record.swap)
        .catch(() => undefined);
      if (proofs?.length === 0 && record.id === current.id) unrun = true;
      if (proofs === undefined || proofs.length === 0) continue;
      const amount = proofs.reduce((sum, p) => sum + p.amount, 0);
      const same =
        paid === undefined &&
        sameSet(record.ys, current.ys) &&
        record.mint === current.mint &&
        record.unit === current.unit &&
        amount >= minimum;
      try {
        this.#store.complete(record.id, proofs, same);
      } catch {
        continue;
      }
      this.#guard.settle(record.ys);
      if (same) {
        paid = { id: record.id, mint: record.mint, unit: record.unit, amount };
      }
    }
    return { paid, unrun };
  }

  /** Those of `ys` the mint holds as spent; none when it cannot say. */
  async #spentOf(mint: string, ys: readonly string[]): Promise<string[]> {
    const states = await this.#gateway
      .checkState(mint, ys)
      .catch(() => undefined);
    return ys.filter((_, i) => states?.[i] === 'SPENT');
  }

  async #swap(record: RedemptionRecord, minimum: number): Promise<Redemption> {
    let proofs: WireProof[];
    try {
      proofs = await this.#gateway.completeSwap(
        record.mint,
        record.unit,
        record.swap,
      );
    } catch (err) {
      return this.#afterFailedSwap(record, minimum, toPaygressError(err));
    }

    this.#store.complete(record.id, proofs, true);
    this.#guard.settle(record.ys);
    return this.#result(record);
  }

  async #afterFailedSwap(
    record: RedemptionRecord,
    minimum: number,
    err: PaygressError,
  ): Promise<Redemption> {
    // The mint answered and refused: nothing of this swap was spent. An
    // error answer of its own is final, and the swap is not kept aside
    // for a late run (worthless tokens would fill that list, and each
    // would be checked at the mint for the next ten minutes).
    if (err.fault === 'payer') {
      if (err.refusedByMint) this.#store.release(record.id, true);
      else this.#setAside(record.id);
      if (!(err instanceof TokenReplayedError)) {
        this.#guard.release(record.ys);
        throw err;
      }
      // Spent: perhaps by an earlier swap of ours that we gave up on and
      // released, which reached the mint after all. Then its outputs are
      // ours to recover, and this payer is the one who paid for them.
      // This very swap too: delivered twice (a proxy in front of the mint
      // retrying it), the first may have run and the second been refused.
      const { paid: recovered, unrun } = await this.#recoverReleased(
        record,
        minimum,
        true,
      ).catch(() => ({ paid: undefined, unrun: false }));
      // Only the proofs the mint holds as spent are remembered so: the
      // rest of the token may be good money of the payer's.
      const spent = await this.#spentOf(record.mint, record.ys);
      // Spent elsewhere and none of its outputs signed: this swap can never
      // run, and nothing of it is kept (tokens spent elsewhere, sent again
      // and again, would otherwise fill the store with their swaps).
      if (unrun && spent.length > 0) this.#store.release(record.id, true);
      this.#guard.settle(spent);
      this.#guard.release(record.ys);
      if (recovered !== undefined) return recovered;
      throw err;
    }
    // Refused by the mint's own answer, for what we built (a fault of
    // ours), or never sent: nothing ran, nothing can, and the payer's token
    // is still good. (Kept aside, a token retried while the mint is down
    // left a swap behind with every try.)
    if (
      err.refusedByMint ||
      (err instanceof MintUnavailableError && err.notSent)
    ) {
      this.#store.release(record.id, true);
      this.#guard.release(record.ys);
      throw err;
    }

    // The request may have reached the mint: ask it what happened.
    const outcome = await this.settle(record, true).catch(
      (): SettleOutcome => 'unsettled',
    );
    if (outcome === 'completed') return this.#result(record);
    if (outcome === 'spent') {
      // Spent without this swap: perhaps by an earlier swap of ours,
      // given up on and released, that ran late (a retry while the mint
      // was slow). Then that payment is this payer's.
      const recovered = await this.#recoverReleased(record, minimum).then(
        (r) => r.paid,
        () => undefined,
      );
      if (recovered !== undefined) return recovered;
      throw new TokenReplayedError(
        'the token was spent elsewhere while this payment was being redeemed',
      );
    }
    if (outcome === 'unsettled') {
      // Keep the claim: the Ys stay recorded as pending in the store, so a
      // retry is refused as pending until a later settle decides.
      this.#guard.release(record.ys);
    }
    throw err;
  }

  #recovered(
    record: RedemptionRecord,
    proofs: readonly WireProof[],
    inRequest: boolean,
  ): SettleOutcome {
    this.#store.complete(record.id, proofs, inRequest);
    this.#guard.settle(record.ys);
    return 'completed';
  }

  #result(record: RedemptionRecord): Redemption {
    return {
      id: record.id,
      mint: record.mint,
      unit: record.unit,
      amount: record.swap.outputAmount,
    };
  }
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  const set = new Set(a);
  return set.size === b.length && b.every((y) => set.has(y));
}
