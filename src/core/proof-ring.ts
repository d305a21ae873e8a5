/**
 * A fixed-size set of proof fingerprints that forgets the oldest first:
 * the in-memory memory of redeemed proofs.
 *
 * A million entries must stay cheap, so nothing here is a JavaScript
 * object per entry: fingerprints live in one ring buffer of 16-byte
 * slots, and an open-addressing hash table of slot numbers (linear
 * probing, backward-shift deletion) finds them. About 24 bytes per entry
 * plus the table, against roughly 200 for a Map of hex strings.
 *
 * Eviction is first in, first out. For replay protection that is the
 * order that matters: a proof enters once, when it is redeemed, and a hit
 * refuses a replay rather than making the entry more useful.
 */

/** Bytes of a fingerprint. */
export const FINGERPRINT_BYTES = 16;

export class ProofRing {
  readonly #capacity: number;
  readonly #ring: Uint8Array;
  readonly #table: Int32Array;
  readonly #mask: number;
  #next = 0;
  #size = 0;

  /** @param capacity Entries kept; the oldest is dropped beyond it. */
  constructor(capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) {
      throw new RangeError('capacity must be a positive integer (entries)');
    }
    this.#capacity = capacity;
    this.#ring = new Uint8Array(capacity * FINGERPRINT_BYTES);
    // At most half full, so probe runs stay short.
    let slots = 2;
    while (slots < capacity * 2) slots *= 2;
    this.#table = new Int32Array(slots).fill(-1);
    this.#mask = slots - 1;
  }

  get size(): number {
    return this.#size;
  }

  has(fingerprint: Uint8Array): boolean {
    return this.#find(fingerprint) !== -1;
  }

  /** Adds a fingerprint (no effect when present), evicting the oldest. */
  add(fingerprint: Uint8Array): void {
    if (this.has(fingerprint)) return;

    const slot = this.#next;
    if (this.#size === this.#capacity) this.#remove(slot);
    else this.#size++;
    this.#ring.set(
      fingerprint.subarray(0, FINGERPRINT_BYTES),
      slot * FINGERPRINT_BYTES,
    );
    this.#next = (slot + 1) % this.#capacity;

    let i = this.#home(fingerprint);
    while (this.#table[i] !== -1) i = (i + 1) & this.#mask;
    this.#table[i] = slot;
  }

  #home(fingerprint: Uint8Array): number {
    // Fingerprints are hash output: any four bytes are uniform.
    const h =
      (fingerprint[0]! |
        (fingerprint[1]! << 8) |
        (fingerprint[2]! << 16) |
        (fingerprint[3]! << 24)) >>>
      0;
    return h & this.#mask;
  }

  /** Table index holding `fingerprint`, or -1. */
  #find(fingerprint: Uint8Array): number {
    for (let i = this.#home(fingerprint); ; i = (i + 1) & this.#mask) {
      const slot = this.#table[i]!;
      if (slot === -1) return -1;
      if (this.#equals(slot, fingerprint)) return i;
    }
  }

  #equals(slot: number, fingerprint: Uint8Array): boolean {
    const at = slot * FINGERPRINT_BYTES;
    for (let b = 0; b < FINGERPRINT_BYTES; b++) {
      if (this.#ring[at + b] !== fingerprint[b]) return false;
    }
    return true;
  }

  /** Removes the entry stored in ring `slot` from the table. */
  #remove(slot: number): void {
    const at = slot * FINGERPRINT_BYTES;
    let hole = this.#find(this.#ring.subarray(at, at + FINGERPRINT_BYTES));
    if (hole === -1) return;

    // Backward-shift deletion: pull later members of the probe run into
    // the hole when their home position allows it, so no tombstones build up.
    for (
      let i = (hole + 1) & this.#mask;
      this.#table[i] !== -1;
      i = (i + 1) & this.#mask
    ) {
      const moved = this.#table[i]!;
      const m = moved * FINGERPRINT_BYTES;
      const home = this.#home(this.#ring.subarray(m, m + FINGERPRINT_BYTES));
      const distanceToHole = (hole - home) & this.#mask;
      const distanceToHere = (i - home) & this.#mask;
      if (distanceToHole <= distanceToHere) {
        this.#table[hole] = moved;
        hole = i;
      }
    }
    this.#table[hole] = -1;
  }
}
