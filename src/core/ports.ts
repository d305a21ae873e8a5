/**
 * The outside world as the core sees it. The composition root supplies real
 * implementations (HTTP mint client, SQLite store, Kubernetes provisioner);
 * tests supply fakes. Nothing in src/core imports a network or cluster
 * library.
 */

/** Milliseconds since the epoch; injectable so expiry runs on a fake clock. */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** A keyset as a mint publishes it (NUT-01/02). */
export interface KeysetInfo {
  /** Full keyset id (`00…` or `01…`). */
  readonly id: string;
  readonly unit: string;
  readonly active: boolean;
  /** Input fee in parts per thousand of a unit, per proof (NUT-02). */
  readonly inputFeePpk: number;
  /** Public keys by amount, when loaded (needed for DLEQ checks). */
  readonly keys?: Readonly<Record<string, string>>;
}

/** A proof in its wire form (NUT-00), amounts as plain integers. */
export interface WireProof {
  readonly id: string;
  readonly amount: number;
  readonly secret: string;
  readonly C: string;
  readonly dleq?: { readonly e: string; readonly s: string; readonly r?: string };
  readonly witness?: string;
}

/** State of a proof at the mint (NUT-07). */
export type ProofState = 'UNSPENT' | 'PENDING' | 'SPENT';

/**
 * A swap prepared but not yet sent: everything needed to send it again
 * byte for byte, or to restore its outputs (NUT-09) after a crash. It holds
 * the input proofs and the output secrets: treat it as money.
 */
export interface PreparedSwap {
  /** Opaque, JSON-safe; only the gateway that made it reads it. */
  readonly serialized: string;
  /** Value the outputs will carry, in the token's unit. */
  readonly outputAmount: number;
}

/** Talks to allowed mints. Implementations must never contact other URLs. */
export interface MintGateway {
  /** All keysets of the mint, cached; refreshed when `refresh` is set. */
  keysets(mintUrl: string, refresh?: boolean): Promise<readonly KeysetInfo[]>;
  /** Builds the swap that turns `proofs` into fresh proofs we own. */
  prepareSwap(
    mintUrl: string,
    unit: string,
    proofs: readonly WireProof[],
  ): Promise<PreparedSwap>;
  /** Sends a prepared swap; resolves with the new proofs. */
  completeSwap(mintUrl: string, swap: PreparedSwap): Promise<WireProof[]>;
  /** Recovers the outputs of a swap the mint executed (NUT-09). */
  restoreSwap(mintUrl: string, swap: PreparedSwap): Promise<WireProof[]>;
  /** NUT-07 states of proofs, by `Y` (hex, compressed point). */
  checkState(mintUrl: string, ys: readonly string[]): Promise<ProofState[]>;
}

/** Outcome of provisioning for one grant. */
export interface Provisioned {
  /** Name of the pod serving the grant. */
  readonly podName: string;
}

/** Creates and retires the pods that payments buy. */
export interface Provisioner {
  /**
   * Ensures a pod exists for `grantId` that lives until `expiresAt`
   * (ms since epoch). Idempotent: an existing pod is success.
   */
  ensure(grantId: string, expiresAt: number): Promise<Provisioned>;
  /** Moves the expiry of an existing grant's pod forward. */
  extend(grantId: string, expiresAt: number): Promise<void>;
  /** Deletes pods whose expiry has passed; resolves with how many. */
  reap(): Promise<number>;
}
