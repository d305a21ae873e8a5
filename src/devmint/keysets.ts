/**
 * Keysets of the dev mint (NUT-01/02): one active keyset per unit, older
 * ones kept inactive so their proofs stay redeemable. Keys are derived by
 * cashu-ts; ids are v2 (`01` + 64 hex), derived the way cashu-ts verifies
 * them, with the unit and a non-zero `input_fee_ppk` in the preimage.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createNewMintKeys } from '@cashu/cashu-ts';
import { toHex } from './crypto.ts';

/**
 * Number of denominations per keyset: amounts 1, 2, 4 … 2^31. Stops short of
 * 2^53 so every amount stays a safe JavaScript integer on the wire.
 */
export const KEYSET_ORDER = 32;

/** A keyset with its private keys; never leaves the dev mint process. */
export interface MintKeyset {
  readonly id: string;
  readonly unit: string;
  active: boolean;
  /** Fee per input proof, in parts per thousand of a unit. */
  readonly inputFeePpk: number;
  /** Compressed public keys by amount (decimal string). */
  readonly publicKeys: Readonly<Record<string, string>>;
  readonly privateKeys: Readonly<Record<string, Uint8Array>>;
}

/** Options of {@link KeysetRegistry}. */
export interface KeysetRegistryOptions {
  /** Units to create an active keyset for. Default `['sat']`. */
  units?: readonly string[];
  /** Input fee of every keyset, ppk per proof. Default 0. */
  inputFeePpk?: number;
  /** Master seed; the same seed gives the same keys. Default: random. */
  seed?: Uint8Array;
}

/** All keysets the dev mint has ever had, by id and by unit. */
export class KeysetRegistry {
  readonly #byId = new Map<string, MintKeyset>();
  readonly #seed: Uint8Array;
  readonly #inputFeePpk: number;
  #generation = 0;

  constructor(options: KeysetRegistryOptions = {}) {
    const fee = options.inputFeePpk ?? 0;
    if (!Number.isInteger(fee) || fee < 0) {
      throw new TypeError('`inputFeePpk` must be a non-negative integer (ppk)');
    }

    this.#seed = options.seed ?? randomBytes(32);
    this.#inputFeePpk = fee;
    for (const unit of options.units ?? ['sat']) this.rotate(unit);
  }

  /** Creates a new active keyset for `unit`; the previous one goes inactive. */
  rotate(unit: string): MintKeyset {
    const seed = this.#keysetSeed(unit, this.#generation++);
    const pair = createNewMintKeys(KEYSET_ORDER, seed, {
      unit,
      input_fee_ppk: this.#inputFeePpk,
      versionByte: 1,
    });
    const keyset: MintKeyset = {
      id: pair.keysetId,
      unit,
      active: true,
      inputFeePpk: this.#inputFeePpk,
      publicKeys: Object.fromEntries(
        Object.entries(pair.pubKeys).map(([amount, key]) => [
          amount,
          toHex(key),
        ]),
      ),
      privateKeys: pair.privKeys,
    };

    for (const old of this.#byId.values()) {
      if (old.unit === unit) old.active = false;
    }
    this.#byId.set(keyset.id, keyset);
    return keyset;
  }

  /** The keyset with this full id, active or not. */
  get(id: string): MintKeyset | undefined {
    return this.#byId.get(id);
  }

  /** The active keyset of `unit`, if the mint has that unit. */
  active(unit: string): MintKeyset | undefined {
    for (const keyset of this.#byId.values()) {
      if (keyset.unit === unit && keyset.active) return keyset;
    }
    return undefined;
  }

  /** Every keyset, oldest first. */
  all(): MintKeyset[] {
    return [...this.#byId.values()];
  }

  /** Units with an active keyset. */
  units(): string[] {
    return [...new Set(this.all().map((keyset) => keyset.unit))];
  }

  // A distinct BIP32 master seed per keyset: cashu-ts derives every keyset's
  // keys on the same path, so reusing one seed would repeat the keys.
  #keysetSeed(unit: string, generation: number): Uint8Array {
    const hash = createHash('sha256');
    hash.update(this.#seed);
    hash.update(`paygress-devmint/${unit}/${generation}`);
    return new Uint8Array(hash.digest());
  }
}
