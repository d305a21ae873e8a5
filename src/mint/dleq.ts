/**
 * NUT-12: checks the DLEQ proof a Cashu proof carries, with its blinding
 * factor `r` (the "reblind" check a receiving wallet makes):
 *
 *   B' = Y + r·G    C' = C + r·A
 *   R1 = s·G − e·A  R2 = s·B' − e·C'
 *   valid iff e = hash_e(R1, R2, A, C'), with Y = hash_to_curve(secret)
 *
 * Every value here is public (the proof, its `r`, the mint's key `A`), so
 * the multiplications run in variable time, two of them as one
 * double-scalar walk: about a fifth of the cost of cashu-ts's
 * constant-time version of the same check, which is a large part of a
 * redemption in pure JavaScript. Scalars must lie in [1, n) and points on
 * the curve, as cashu-ts requires; anything malformed is simply invalid.
 */
import { hash_e, pointFromHex } from '@cashu/cashu-ts';
import type { WireProof } from '../core/ports.ts';
import { computeY } from '../core/token.ts';

/** The fields of a proof the check reads; `dleq` as NUT-12 sends it. */
export type DleqProof = Pick<WireProof, 'secret' | 'C' | 'dleq'>;

/** secp256k1's group order. */
const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;

const G = pointFromHex(
  '0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798',
).precompute(8, false);

/**
 * True when the proof's DLEQ proof shows that `C` was signed with the
 * mint key `mintKey` (compressed hex). False for any other proof,
 * including one without a DLEQ proof or without its `r`.
 */
export function verifyProofDleq(proof: DleqProof, mintKey: string): boolean {
  const dleq = proof.dleq;
  if (dleq?.r === undefined) return false;
  const e = scalar(dleq.e, 64);
  const s = scalar(dleq.s, 64);
  const r = scalar(dleq.r, 1);
  if (e === undefined || s === undefined || r === undefined) return false;

  try {
    const A = pointFromHex(mintKey);
    const Y = pointFromHex(computeY(proof.secret));
    const blinded = G.multiplyUnsafe(r).add(Y);
    const signed = A.multiplyUnsafe(r).add(pointFromHex(proof.C));
    const R1 = G.mulAddUnsafe(s, A, N - e);
    const R2 = blinded.mulAddUnsafe(s, signed, N - e);
    const hash = hash_e([R1, R2, A, signed]);
    return Buffer.from(hash).toString('hex') === dleq.e.toLowerCase();
  } catch {
    // Not a point, or a point at infinity where a point is needed.
    return false;
  }
}

/**
 * Hex read as a scalar in [1, n), else undefined. `e` and `s` are 32
 * bytes; `r` is read as a number, so wallets may drop its leading zeros.
 */
function scalar(hex: string, minDigits: number): bigint | undefined {
  if (hex.length < minDigits || !/^[0-9a-fA-F]{1,64}$/.test(hex)) {
    return undefined;
  }
  const value = BigInt(`0x${hex}`);
  return value > 0n && value < N ? value : undefined;
}
