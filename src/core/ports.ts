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
  readonly dleq?: {
    readonly e: string;
    readonly s: string;
    readonly r?: string;
  };
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
  /**
   * The keysets last fetched from the mint, without asking it; undefined
   * before the first fetch succeeded.
   */
  knownKeysets(mintUrl: string): readonly KeysetInfo[] | undefined;
  /** Builds the swap that turns `proofs` into fresh proofs we own. */
  prepareSwap(
    mintUrl: string,
    unit: string,
    proofs: readonly WireProof[],
    options?: { requireDleq?: boolean },
  ): Promise<PreparedSwap>;
  /** Sends a prepared swap; resolves with the new proofs. */
  completeSwap(
    mintUrl: string,
    unit: string,
    swap: PreparedSwap,
  ): Promise<WireProof[]>;
  /** Recovers the outputs of a swap the mint executed (NUT-09). */
  restoreSwap(
    mintUrl: string,
    unit: string,
    swap: PreparedSwap,
  ): Promise<WireProof[]>;
  /** NUT-07 states of proofs, by `Y` (hex, compressed point). */
  checkState(mintUrl: string, ys: readonly string[]): Promise<ProofState[]>;
}

/** A redemption as the wallet store records it before the swap is sent. */
export interface RedemptionRecord {
  /** Unique id of this redemption. */
  readonly id: string;
  /** Normalised URL of the mint. */
  readonly mint: string;
  readonly unit: string;
  /** Gross value of the input proofs. */
  readonly amount: number;
  /** `Y` of every input proof. */
  readonly ys: readonly string[];
  /** The prepared swap, holding inputs and output secrets. */
  readonly swap: PreparedSwap;
  /** When the redemption began, ms since epoch. */
  readonly createdAt: number;
}

/** Stored value per mint and unit. */
export interface Balance {
  readonly mint: string;
  readonly unit: string;
  /** Value of unspent, unexported proofs. */
  readonly available: number;
  /** Gross value of redemptions begun and not yet settled. */
  readonly pending: number;
}

/** What an owed redemption must be to pay for the request retrying it. */
export interface OwedTerms {
  /** The mint the retry's token names (normalised). */
  readonly mint: string;
  /** The unit the retry's token names. */
  readonly unit: string;
  /** The least value, after fees, the request costs. */
  readonly minimum: number;
}

/**
 * Durable record of every redemption and of the proofs it produced. Calls
 * are synchronous so that a check and the write that follows it cannot be
 * interleaved with another request.
 */
export interface WalletStore {
  /**
   * The first of `ys` already recorded, and whether its redemption is
   * still unsettled (`pending`) rather than complete.
   */
  findRedeemed(
    ys: readonly string[],
  ): { readonly y: string; readonly pending: boolean } | undefined;
  /**
   * Write-ahead: records the swap before it leaves. Throws
   * `TokenReplayedError` when any of its `Y`s is already recorded. The
   * record may not be on disk yet: the swap leaves only once
   * {@link durable} has resolved.
   */
  begin(record: RedemptionRecord): void;
  /**
   * Resolves once everything written so far is on disk (a power cut keeps
   * it), without holding up the process while the disk works; rejects
   * with `StoreFailedError` when the disk refuses.
   */
  durable(): Promise<void>;
  /**
   * Stores the new proofs and closes the redemption (pending, or released
   * and found executed after all), atomically. Not waited for on disk:
   * the swap's record, durable since before the swap left, recovers them
   * from the mint if a power cut loses this. With `inRequest` the
   * paying request is being answered with it now: it is handed over by
   * {@link delivered} or {@link refund}, or given up by {@link abandon},
   * and a crash before either leaves it owed. Otherwise (completed later,
   * by settling) it is owed to the payer at once.
   */
  complete(id: string, proofs: readonly WireProof[], inRequest: boolean): void;
  /**
   * A redemption of exactly these `Y`s owed to its payer (completed after
   * the request was refused, or its answer lost), if it matches `want`:
   * it is then being delivered (see {@link complete}), and not handed to
   * another request meanwhile. The payer paid and got nothing, so the
   * same token buys its request on a retry, once. `'delivering'`: one
   * of these `Y`s' redemption is being delivered by another request,
   * which may yet leave it owed.
   */
  deliver(
    ys: readonly string[],
    want: OwedTerms,
  ):
    | {
        readonly id: string;
        readonly mint: string;
        readonly unit: string;
        readonly amount: number;
        /** The grant it bought before (see {@link buying}), if known. */
        readonly grant?: string;
      }
    | 'delivering'
    | undefined;
  /**
   * The grant a redemption being delivered buys, recorded before its pod
   * is made: should the answer never come (a crash, a shutdown), the
   * retry of the owed payment buys that grant again (see {@link deliver}).
   */
  buying(id: string, grant: string): void;
  /** The answer handing over a redemption being delivered is ready. */
  delivered(id: string): void;
  /** A redemption being delivered will not be, after all: owe it again. */
  abandon(id: string): void;
  /**
   * The answer delivering a completed redemption never reached its payer:
   * owe it again (what {@link deliver} hands out), and take back any
   * refund of it, which went out in that same answer. `grant`: the grant
   * that answer gave, kept for the retry (see {@link deliver}); `null`:
   * it gave none (a top-up handed back), and the retry buys what it
   * presents.
   */
  undeliver(id: string, grant?: string | null): void;
  /**
   * The mint did not execute the swap: forget its `Y`s so a retry works.
   * Unless `final` (the mint answered refusing it, or some of its inputs
   * were spent elsewhere: it can never run), the swap is kept aside as
   * released, since a request on its way may still run it; final, nothing
   * of it is kept, a swap kept aside before included.
   */
  release(id: string, final?: boolean): void;
  /** Redemptions begun and neither completed nor released. */
  unfinished(): RedemptionRecord[];
  /**
   * Redemptions released as not executed, settled at or after `since`
   * (ms since epoch), that spent any of `ys` (all when `ys` is empty). A
   * swap still on its way when the mint said "unspent" may have run after
   * all; `complete` then takes such a redemption back.
   */
  released(ys: readonly string[], since?: number): RedemptionRecord[];
  /**
   * Redemptions released as not executed and settled before `until`, the
   * oldest first, `limit` at most after passing over `skip` of them.
   */
  releasedBefore(
    until: number,
    limit: number,
    skip?: number,
  ): RedemptionRecord[];
  /**
   * Takes the proofs a completed redemption produced out of the wallet
   * (marks them refunded) and returns them, to hand back to the payer;
   * none when any of them already left the wallet (an export). A refund
   * is what the answer delivers: it counts as {@link delivered}.
   * `grantUntil`: the refund is of a new grant whose pod could not be
   * made, which would have expired then (see {@link refundedGrants}).
   */
  refund(id: string, grantUntil?: number): WireProof[];
  /**
   * Redemptions refunded with a `grantUntil` after `now`, and that time:
   * a pod a late create made for their grant is to be deleted. A refund
   * taken back ({@link undeliver}) is not among them.
   */
  refundedGrants(now: number): { id: string; until: number }[];
  /**
   * Records the one use of a single-use grant; false when it was used
   * already. Durable, so a restart does not make it usable again.
   */
  useGrant(id: string): boolean;
  /** Whether a single-use grant's one use is recorded. */
  grantUsed(id: string): boolean;
  /** Payments owed to their token's retry, being delivered not counted. */
  owedCount(): number;
  /** Makes a used single-request grant good again: its answer was lost. */
  unuseGrant(id: string): void;
  /** Stored value per mint and unit. */
  balances(): Balance[];
  close(): void;
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
  /**
   * Makes sure the grant's pod lives until `expiresAt`, reading it first:
   * its expiry is moved forward if need be, a pod that is gone or that
   * the cluster stopped is made anew, and one stopped at its lifetime cap
   * is refused (ProvisionFailedError).
   */
  extend(grantId: string, expiresAt: number): Promise<void>;
  /** Deletes pods whose expiry has passed; resolves with how many. */
  reap(): Promise<number>;
  /**
   * The payment for a new grant was handed back, or kept on a credit,
   * after `ensure` failed: deletes the grant's pod if the failed create
   * made it anyway (now, or when it appears, until `expiresAt`). A later
   * `ensure` of the grant (the credit used) deletes such a pod first and
   * makes it anew. Never rejects.
   */
  release(grantId: string, expiresAt: number): Promise<void>;
  /** Name of the pod serving `grantId` (deterministic; no API call). */
  podName(grantId: string): string;
}
