/**
 * The secp256k1 arithmetic of a redemption (NUT-00 blind signatures,
 * NUT-12 DLEQ proofs), over compressed points as bytes or hex, in
 * libsecp256k1: natively where the `secp256k1` package's prebuilt binary
 * loads, else compiled to WebAssembly (src/core/secp256k1.ts says which
 * operation may touch a secret, and why each is safe for it). Either is
 * several times faster than the pure-JavaScript curve code cashu-ts uses.
 *
 * A blinding factor `r` of our own is secret: it meets only `k·G`, the
 * point addition and the constant-time multiplication. Every other value
 * here (a payer's proof and its `r`, the mint's keys, its signatures and
 * DLEQ proofs) is public and multiplied in variable time.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  secp256k1For,
  type CurveBackend,
  type Secp256k1,
} from './secp256k1.ts';

// Chosen on first use, not on import: with `wasm` set, the native
// binary is never loaded, so a binary that would crash the process at
// load cannot.
let chosen: Secp256k1 | undefined;

function curve(): Secp256k1 {
  return (chosen ??= secp256k1For('auto'));
}

/**
 * Chooses the build of libsecp256k1 (`auto`: native where it loads) and
 * returns the one in use. Throws for `native` where it does not load;
 * `wasm` never loads the native binary.
 */
export function useSecp256k1(setting: 'auto' | CurveBackend): CurveBackend {
  chosen = secp256k1For(setting);
  return chosen.name;
}

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
  const ec = curve();
  const m = createHash('sha256').update(DOMAIN).update(message).digest();
  const counter = Buffer.alloc(4);
  const candidate = new Uint8Array(33);
  candidate[0] = 0x02;
  for (let i = 0; i < 0x10000; i++) {
    counter.writeUInt32LE(i);
    candidate.set(createHash('sha256').update(m).update(counter).digest(), 1);
    if (ec.isPoint(candidate)) return candidate;
  }
  throw new Error('hash_to_curve found no point');
}

/** `Y = hash_to_curve(secret)` of a proof's secret, compressed hex. */
export function secretToY(secret: string): string {
  return Buffer.from(hashToCurve(Buffer.from(secret, 'utf8'))).toString('hex');
}

/** A uniformly random scalar in [1, n), 32 bytes big-endian. */
export function randomScalar(): Uint8Array {
  const ec = curve();
  for (;;) {
    const bytes = randomBytes(32);
    if (ec.isScalar(bytes)) return bytes;
  }
}

/**
 * `B_ = Y + r·G` (NUT-00 blinding), compressed. Constant-time in `r`:
 * `ecmult_gen`, then the constant-time addition. `r` must be in [1, n).
 */
export function blind(Y: Uint8Array, r: Uint8Array): Uint8Array {
  const ec = curve();
  // Uncompressed, so that reading it back needs no square root.
  const B = ec.add(Y, ec.mulBase(r, false), true);
  if (!B) throw new Error('blinding reached the point at infinity');
  return B;
}

/**
 * `C = C_ − r·K` (NUT-00 unblinding), compressed hex. `r·K` is the
 * constant-time multiplication; throws when a point is invalid or the
 * result is the point at infinity, as cashu-ts does.
 */
export function unblind(C_: string, r: bigint, K: string): string {
  const ec = curve();
  const signature = pointBytes(C_);
  const key = pointBytes(K);
  if (signature === undefined || key === undefined) {
    throw new Error('unblinding: not a point on secp256k1');
  }
  const C = ec.add(
    signature,
    ec.negate(ec.mulSecret(key, scalarBytes(r)), false),
    true,
  );
  if (!C) throw new Error('unblinding reached the point at infinity');
  return Buffer.from(C).toString('hex');
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
  const ec = curve();
  try {
    // The build refuses (throws on) a point off the curve or in an
    // encoding cashu-ts does not read, and a scalar outside [1, n).
    const minusE = ec.negateScalar(e);
    const eA = ec.mulPublic(A, minusE, false);
    const sB = ec.mulPublic(B_, s, false);
    const eC = ec.mulPublic(C_, minusE, false);
    const R1 = ec.add(ec.mulBase(s, false), eA, false);
    const R2 = ec.add(sB, eC, false);
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
  const ec = curve();
  try {
    // Refused by the build as in verifyDleq: invalid.
    const B_ = ec.add(Y, ec.mulBase(r, false), false);
    const C_ = ec.add(C, ec.mulPublic(A, r, false), false);
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
  const ec = curve();
  const hash = createHash('sha256');
  for (const point of points) {
    hash.update(Buffer.from(ec.convert(point, false)).toString('hex'));
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
  const ec = curve();
  if (typeof hex !== 'string') return undefined;
  if (!/^(0[23][0-9a-fA-F]{64}|04[0-9a-fA-F]{128})$/.test(hex)) {
    return undefined;
  }
  const bytes = Buffer.from(hex, 'hex');
  return ec.isPoint(bytes) ? bytes : undefined;
}

/** Exactly 32 bytes from 64 hex digits (either case), else undefined. */
export function bytes32(hex: unknown): Uint8Array | undefined {
  if (typeof hex !== 'string' || !/^[0-9a-fA-F]{64}$/.test(hex)) {
    return undefined;
  }
  return Buffer.from(hex, 'hex');
}

/** A scalar as 32 bytes big-endian; throws outside [0, 2^256). */
export function scalarBytes(value: bigint): Uint8Array {
  if (value < 0n || value >= 1n << 256n) {
    throw new RangeError('a scalar is below 2^256 and not negative');
  }
  return Buffer.from(value.toString(16).padStart(64, '0'), 'hex');
}
