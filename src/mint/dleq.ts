/**
 * NUT-12: checks the DLEQ proof a Cashu proof carries, with its blinding
 * factor `r` (the "reblind" check a receiving wallet makes):
 *
 *   B' = Y + r·G    C' = C + r·A
 *   R1 = s·G − e·A  R2 = s·B' − e·C'
 *   valid iff e = hash_e(R1, R2, A, C'), with Y = hash_to_curve(secret)
 *
 * Every value here is public (the proof, its `r`, the mint's key `A`), so
 * the arithmetic is libsecp256k1's variable-time kind (src/core/curve.ts),
 * a fraction of the cost of cashu-ts's constant-time JavaScript version
 * of the same check. Scalars must lie in [1, n) and points on the curve,
 * as cashu-ts requires; anything malformed is simply invalid.
 */
import type { WireProof } from '../core/ports.ts';
import { computeY } from '../core/token.ts';
import {
  N,
  bytes32,
  pointBytes,
  scalarBytes,
  verifyProofDleq as verify,
} from '../core/curve.ts';

/** The fields of a proof the check reads; `dleq` as NUT-12 sends it. */
export type DleqProof = Pick<WireProof, 'secret' | 'C' | 'dleq'>;

/**
 * True when the proof's DLEQ proof shows that `C` was signed with the
 * mint key `mintKey` (compressed hex). False for any other proof,
 * including one without a DLEQ proof or without its `r`; never throws.
 */
export function verifyProofDleq(proof: DleqProof, mintKey: string): boolean {
  const dleq = proof.dleq;
  if (dleq?.r === undefined || typeof proof.secret !== 'string') return false;
  const e = bytes32(dleq.e);
  const s = bytes32(dleq.s);
  const r = scalar(dleq.r);
  const A = pointBytes(mintKey);
  const C = pointBytes(proof.C);
  if (!e || !s || !r || !A || !C) return false;
  // Y of each proof was computed (and cached) when the token was read.
  const Y = Buffer.from(computeY(proof.secret), 'hex');
  return verify(e, s, r, A, Y, C);
}

/**
 * `r` as 32 bytes if it is hex of a scalar in [1, n), else undefined. It
 * is read as a number, as cashu-ts reads it: wallets may drop its leading
 * zeros, or write it in 33 bytes (a leading `00`).
 */
function scalar(hex: unknown): Uint8Array | undefined {
  if (typeof hex !== 'string' || !/^[0-9a-fA-F]{1,66}$/.test(hex)) {
    return undefined;
  }
  const value = BigInt(`0x${hex}`);
  return value > 0n && value < N ? scalarBytes(value) : undefined;
}
