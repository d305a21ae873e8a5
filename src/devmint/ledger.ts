/**
 * What the dev mint remembers, in memory: spent and pending proofs by `Y`,
 * outputs in flight, and every blind signature it has issued by `B_` so
 * that NUT-09 restore can hand them back.
 */
import type { WireBlindSignature } from './crypto.ts';
import type { WireBlindedMessage } from './wire.ts';

/** State of a proof (NUT-07). */
export type ProofState = 'UNSPENT' | 'PENDING' | 'SPENT';

/** An issued signature with the output it answered. */
export interface IssuedSignature {
  readonly output: WireBlindedMessage;
  readonly signature: WireBlindSignature;
}

/** Proof and output bookkeeping of one dev mint. */
/** What survives a restart of a dev mint that keeps its state. */
export interface LedgerSnapshot {
  readonly spent: readonly string[];
  readonly issued: readonly IssuedSignature[];
}

export class Ledger {
  readonly #spent = new Set<string>();
  readonly #pending = new Set<string>();
  readonly #pendingOutputs = new Set<string>();
  readonly #issued = new Map<string, IssuedSignature>();
  /** Called after every commit, to persist the ledger. */
  onCommit: (() => void) | undefined;

  /** A ledger holding `snapshot` (pending state is never persisted). */
  static from(snapshot: LedgerSnapshot): Ledger {
    const ledger = new Ledger();
    ledger.commit(snapshot.spent, snapshot.issued);
    return ledger;
  }

  snapshot(): LedgerSnapshot {
    return { spent: [...this.#spent], issued: [...this.#issued.values()] };
  }

  /** State of the proof whose `Y` is given. */
  state(y: string): ProofState {
    if (this.#spent.has(y)) return 'SPENT';
    if (this.#pending.has(y)) return 'PENDING';
    return 'UNSPENT';
  }

  /** Whether an output with this `B_` is being signed right now. */
  isOutputPending(B_: string): boolean {
    return this.#pendingOutputs.has(B_);
  }

  /** The signature issued for `B_`, if any. */
  issued(B_: string): IssuedSignature | undefined {
    return this.#issued.get(B_);
  }

  /** Marks inputs and outputs as in flight. */
  reserve(ys: readonly string[], outputs: readonly string[]): void {
    for (const y of ys) this.#pending.add(y);
    for (const B_ of outputs) this.#pendingOutputs.add(B_);
  }

  /** Ends a reservation, successful or not. */
  release(ys: readonly string[], outputs: readonly string[]): void {
    for (const y of ys) this.#pending.delete(y);
    for (const B_ of outputs) this.#pendingOutputs.delete(B_);
  }

  /** Marks inputs spent and records the signatures issued in exchange. */
  commit(ys: readonly string[], issued: readonly IssuedSignature[]): void {
    for (const y of ys) this.#spent.add(y);
    for (const entry of issued) this.#issued.set(entry.output.B_, entry);
    this.onCommit?.();
  }
}
