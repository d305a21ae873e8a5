/**
 * The dev mint's BDHKE operations (NUT-00, NUT-12), all delegated to the
 * secp256k1 maths that cashu-ts exports: this file only adapts hex and
 * bytes at the wire boundary.
 */
import {
  createBlindSignature,
  createDLEQProof,
  hashToCurve,
  pointFromHex,
  verifyUnblindedSignature,
} from '@cashu/cashu-ts';

/** A secp256k1 point as cashu-ts represents it. */
export type Point = ReturnType<typeof pointFromHex>;

/** A blind signature in its wire form (NUT-00 with the NUT-12 `dleq`). */
export interface WireBlindSignature {
  id: string;
  amount: number;
  C_: string;
  dleq: { e: string; s: string };
}

const COMPRESSED_POINT = /^0[23][0-9a-f]{64}$/;

/** Lowercase hex of bytes. */
export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

/** Bytes of a hex string (no validation beyond what Buffer does). */
export function fromHex(hex: string): Uint8Array {
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

/**
 * Parses a compressed public key (33 bytes, `02`/`03` prefix, lowercase hex)
 * that lies on the curve; `undefined` otherwise. NUT-01 requires compressed
 * keys, so the uncompressed form is refused even when the point is valid.
 */
export function parsePoint(hex: unknown): Point | undefined {
  if (typeof hex !== 'string' || !COMPRESSED_POINT.test(hex)) return undefined;
  try {
    return pointFromHex(hex);
  } catch {
    return undefined;
  }
}

/** `P + G` as compressed hex: a valid point that is not `P`. */
export function otherPoint(hex: string): string {
  return pointFromHex(hex).add(G).toHex(true);
}

const G = pointFromHex(
  '0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798',
);

/** `Y = hash_to_curve(secret)` as compressed hex; the key of a proof's state. */
export function proofY(secret: string): string {
  return hashToCurve(new TextEncoder().encode(secret)).toHex(true);
}

/** Whether `C == k * hash_to_curve(secret)`: the mint's check of a proof. */
export function isValidSignature(
  secret: string,
  C: Point,
  privateKey: Uint8Array,
): boolean {
  const unblinded = { secret: new TextEncoder().encode(secret), C, id: '' };
  return verifyUnblindedSignature(unblinded, privateKey);
}

/** Signs `B_` with `k` and proves it with a DLEQ (NUT-12). */
export function signBlindedMessage(
  B_: Point,
  privateKey: Uint8Array,
  keysetId: string,
  amount: number,
): WireBlindSignature {
  const { C_ } = createBlindSignature(B_, privateKey, keysetId);
  const dleq = createDLEQProof(B_, privateKey);

  return {
    id: keysetId,
    amount,
    C_: C_.toHex(true),
    dleq: { e: toHex(dleq.e), s: toHex(dleq.s) },
  };
}
