/**
 * The secp256k1 arithmetic of a redemption (NUT-00 blind signatures,
 * NUT-12 DLEQ proofs), over compressed points as bytes or hex. Most of it
 * runs in libsecp256k1, compiled to WebAssembly by the `tiny-secp256k1`
 * package: several times faster than the pure-JavaScript curve code
 * cashu-ts uses, with no native build.
 *
 * Which operations may touch a secret. A blinding factor `r` of our own is
 * secret (with `B_` it reveals `Y`, linking the proof to its swap), so it
 * meets only operations that are constant-time in it. tiny-secp256k1
 * 2.2.4's .wasm is rust-secp256k1's copy of libsecp256k1 (its symbols are
 * `rustsecp256k1_v0_8_1_*`) behind tiny-secp256k1's Rust wrapper. Read in
 * that wrapper and in libsecp256k1's `secp256k1.c` and `eckey_impl.h`,
 * which say the same in every version read, from rust-secp256k1's v0.4.1
 * copy to a recent bitcoin-core one:
 *
 * - `pointFromScalar` is `secp256k1_ec_pubkey_create`: `ecmult_gen`,
 *   constant-time, its table blinded by the context seed. Used for `r·G`.
 * - `pointAdd` is `secp256k1_ec_pubkey_combine`: `gej_add_ge`, the
 *   constant-time addition. Used for `Y + r·G`.
 * - `pointMultiply` is `secp256k1_ec_pubkey_tweak_mul`, whose
 *   `eckey_pubkey_tweak_mul` calls `secp256k1_ecmult`: the variable-time
 *   wNAF multiplication, not `ecmult_const`. Measured here, a scalar
 *   below 2^16 takes a fifth of the time of a random one, while
 *   `pointFromScalar` takes the same time for both. Public scalars only.
 * - `pointAddScalar` is `secp256k1_ec_pubkey_tweak_add`, also
 *   `secp256k1_ecmult`, variable-time. Not used.
 *
 * tiny-secp256k1 offers no constant-time product of a secret scalar and an
 * arbitrary point (libsecp256k1's `ecmult_const` is reached only through
 * ECDH, which it does not expose), so unblinding, `r·K`, stays on the
 * constant-time multiplication of @noble/curves that cashu-ts uses,
 * made cheaper by a precomputed table per mint key.
 *
 * Every other value here (a payer's proof and its `r`, the mint's keys,
 * its signatures and DLEQ proofs) is public and multiplied in variable
 * time.
 */
import { createHash, randomBytes } from 'node:crypto';
import { pointFromHex } from '@cashu/cashu-ts';
import { LRUCache } from 'lru-cache';
import * as ecc from 'tiny-secp256k1';

// Seeds the context's blinding of `ecmult_gen` from node:crypto; without
// this call tiny-secp256k1 seeds it from a stack address on first use.
ecc.__initializeContext();

/** secp256k1's group order. */
export const N =
  0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;

const DOMAIN = Buffer.from('Secp256k1_HashToCurve_Cashu_', 'utf8');

/**
 * NUT-00 `hash_to_curve`: `m = sha256(DOMAIN || message)`, then the first
 * `02 || sha256(m || counter)` (counter: 4 bytes little-endian, from 0)
 * that is a point. Compressed, 33 bytes.
 */
export function hashToCurve(message: Uint8Array): Uint8Array {
  const m = createHash('sha256').update(DOMAIN).update(message).digest();
  const counter = Buffer.alloc(4);
  const candidate = new Uint8Array(33);
  candidate[0] = 0x02;
  for (let i = 0; i < 0x10000; i++) {
    counter.writeUInt32LE(i);
    candidate.set(createHash('sha256').update(m).update(counter).digest(), 1);
    if (ecc.isPoint(candidate)) return candidate;
  }
  throw new Error('hash_to_curve found no point');
}

/** `Y = hash_to_curve(secret)` of a proof's secret, compressed hex. */
export function secretToY(secret: string): string {
  return Buffer.from(hashToCurve(Buffer.from(secret, 'utf8'))).toString('hex');
}

/** A uniformly random scalar in [1, n), 32 bytes big-endian. */
export function randomScalar(): Uint8Array {
  for (;;) {
    const bytes = randomBytes(32);
    if (ecc.isPrivate(bytes)) return bytes;
  }
}

/**
 * `B_ = Y + r·G` (NUT-00 blinding), compressed. Constant-time in `r`:
 * `ecmult_gen`, then the constant-time addition. `r` must be in [1, n).
 */
export function blind(Y: Uint8Array, r: Uint8Array): Uint8Array {
  // Uncompressed, so that reading it back needs no square root.
  const rG = ecc.pointFromScalar(r, false);
  const B = rG && ecc.pointAdd(Y, rG, true);
  if (!B) throw new Error('blinding reached the point at infinity');
  return B;
}

/**
 * `C = C_ − r·K` (NUT-00 unblinding), compressed hex. `r·K` is the
 * constant-time (and scalar-blinded) multiplication of @noble/curves,
 * with a table per mint key `K`; throws when a point is invalid or the
 * result is the point at infinity, as cashu-ts does.
 */
export function unblind(C_: string, r: bigint, K: string): string {
  return pointFromHex(C_).subtract(keyTable(K).multiply(r)).toHex(true);
}

type NoblePoint = ReturnType<typeof pointFromHex>;

// A mint has one key per amount and rarely more than a few keysets; each
// table is about 120 KiB and takes ~20 ms to build, and makes a
// multiplication about five times faster.
const tables = new LRUCache<string, NoblePoint>({ max: 64 });

function keyTable(K: string): NoblePoint {
  let point = tables.get(K);
  if (point === undefined) {
    point = pointFromHex(K).precompute(6, true);
    tables.set(K, point);
  }
  return point;
}

/**
 * NUT-12 check of a blind signature (`C_` on `B_` under key `A`): with
 * `R1 = s·G − e·A` and `R2 = s·B_ − e·C_`, valid iff
 * `e = sha256(hex(R1) || hex(R2) || hex(A) || hex(C_))` over uncompressed
 * lower-case hex. `e` and `s` must be 32 bytes in [1, n), the points on
 * the curve and neither R the point at infinity; anything else is
 * invalid. Public values only: variable time.
 */
export function verifyDleq(
  e: Uint8Array,
  s: Uint8Array,
  A: Uint8Array,
  B_: Uint8Array,
  C_: Uint8Array,
): boolean {
  if (!ecc.isPrivate(e) || !ecc.isPrivate(s)) return false;
  if (!encoded(A) || !encoded(B_) || !encoded(C_)) return false;
  try {
    // Multiplying parses A, B_ and C_: a point off the curve throws.
    const minusE = ecc.privateNegate(e);
    const eA = ecc.pointMultiply(A, minusE, false);
    const sB = ecc.pointMultiply(B_, s, false);
    const eC = ecc.pointMultiply(C_, minusE, false);
    const R1 = add(ecc.pointFromScalar(s, false), eA);
    const R2 = add(sB, eC);
    return R1 !== null && R2 !== null && hashE([R1, R2, A, C_]).equals(e);
  } catch {
    return false;
  }
}

/**
 * NUT-12 check a receiver makes of a proof (`C` on a secret whose
 * `hash_to_curve` is `Y`, key `A`) with the blinding factor `r` that came
 * with it: `B_ = Y + r·G` and `C_ = C + r·A`, then {@link verifyDleq}.
 * `r` is the payer's, public.
 */
export function verifyProofDleq(
  e: Uint8Array,
  s: Uint8Array,
  r: Uint8Array,
  A: Uint8Array,
  Y: Uint8Array,
  C: Uint8Array,
): boolean {
  if (!ecc.isPrivate(r) || !encoded(A) || !encoded(Y) || !encoded(C)) {
    return false;
  }
  try {
    const B_ = add(Y, ecc.pointFromScalar(r, false));
    const C_ = add(C, ecc.pointMultiply(A, r, false));
    return B_ !== null && C_ !== null && verifyDleq(e, s, A, B_, C_);
  } catch {
    return false;
  }
}

/**
 * NUT-12 `hash_e`: sha256 of the points' uncompressed hex, lower case,
 * concatenated (the hex text, not the bytes, is hashed).
 */
export function hashE(points: readonly Uint8Array[]): Buffer {
  const hash = createHash('sha256');
  for (const point of points) {
    hash.update(Buffer.from(ecc.pointCompress(point, false)).toString('hex'));
  }
  return hash.digest();
}

/**
 * A point's bytes from hex as cashu-ts reads one: compressed (`02`/`03`,
 * 33 bytes) or uncompressed (`04`, 65 bytes), either case, on the curve.
 * Undefined otherwise (libsecp256k1 would also take the hybrid `06`/`07`
 * form, which cashu-ts refuses).
 */
export function pointBytes(hex: unknown): Uint8Array | undefined {
  if (typeof hex !== 'string') return undefined;
  if (!/^(0[23][0-9a-fA-F]{64}|04[0-9a-fA-F]{128})$/.test(hex)) {
    return undefined;
  }
  const bytes = Buffer.from(hex, 'hex');
  return ecc.isPoint(bytes) ? bytes : undefined;
}

/** Exactly 32 bytes from 64 hex digits (either case), else undefined. */
export function bytes32(hex: unknown): Uint8Array | undefined {
  if (typeof hex !== 'string' || !/^[0-9a-fA-F]{64}$/.test(hex)) {
    return undefined;
  }
  return Buffer.from(hex, 'hex');
}

/** A scalar as 32 bytes big-endian. */
export function scalarBytes(value: bigint): Uint8Array {
  return Buffer.from(value.toString(16).padStart(64, '0'), 'hex');
}

/**
 * Whether the bytes are in an encoding cashu-ts reads (compressed, or
 * uncompressed `04`); whether they lie on the curve is checked by the
 * operation that parses them.
 */
function encoded(p: Uint8Array): boolean {
  return (
    (p.length === 33 && (p[0] === 2 || p[0] === 3)) ||
    (p.length === 65 && p[0] === 4)
  );
}

/** `P + Q`, or null if either is missing or the sum is infinity. */
function add(P: Uint8Array | null, Q: Uint8Array | null): Uint8Array | null {
  return P && Q && ecc.pointAdd(P, Q, false);
}
