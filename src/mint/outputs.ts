/**
 * The outputs of Paygress's swaps (NUT-03), made and turned into proofs
 * with the curve code of src/core/curve.ts instead of cashu-ts's pure
 * JavaScript, and otherwise exactly as cashu-ts makes them: the same
 * secrets (64 hex digits, or the NUT-10/11 P2PK secret), the same blinded
 * messages on the wire, the same write-ahead record, the same proofs, and
 * the same refusals of a mint answer that does not verify.
 *
 * cashu-ts drives them: the wallet takes {@link fastOutputs} as its output
 * creator, so amounts, fees, splits and its checks (a mint must support
 * NUT-11 before anything is locked to a key) stay its own; it calls
 * `toProof` on each output when the mint answers a swap, and Paygress does
 * when it restores one (NUT-09). Anything this module does not make
 * itself, it leaves to cashu-ts.
 */
import { randomBytes } from 'node:crypto';
import {
  Amount,
  CTSError,
  OutputData,
  deserializeSwapPreview,
  splitAmount,
  type AmountLike,
  type HasKeysetKeys,
  type OutputDataCreator,
  type OutputDataLike,
  type P2PKOptions,
  type Proof,
  type SerializedBlindedMessage,
  type SerializedBlindedSignature,
  type SerializedOutputData,
  type SerializedSwapPreview,
  type SwapPreview,
} from '@cashu/cashu-ts';
import {
  N,
  blind,
  bytes32,
  hashToCurve,
  pointBytes,
  randomScalar,
  scalarBytes,
  unblind,
  verifyDleq,
} from '../core/curve.ts';

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * One output: a secret, its blinding factor `r` (secret: it links the
 * proof to this swap) and the blinded message `B_ = Y + r·G` sent to the
 * mint. Has the fields cashu-ts serializes, so its write-ahead record is
 * the one cashu-ts writes.
 */
export class FastOutput implements OutputDataLike {
  blindedMessage: SerializedBlindedMessage;
  blindingFactor: bigint;
  secret: Uint8Array;

  constructor(
    blindedMessage: SerializedBlindedMessage,
    blindingFactor: bigint,
    secret: Uint8Array,
  ) {
    this.blindedMessage = blindedMessage;
    this.blindingFactor = blindingFactor;
    this.secret = secret;
  }

  /** A new output for `secret` with a fresh random blinding factor. */
  static create(amount: AmountLike, keysetId: string, secret: string) {
    const bytes = new TextEncoder().encode(secret);
    const r = randomScalar();
    const B_ = Buffer.from(blind(hashToCurve(bytes), r)).toString('hex');
    return new FastOutput(
      { amount: Amount.from(amount), B_, id: keysetId },
      BigInt(`0x${Buffer.from(r).toString('hex')}`),
      bytes,
    );
  }

  /**
   * The proof the mint's blind signature makes of this output, as
   * cashu-ts's `OutputData.toProof` makes it: the keyset must be the
   * output's; a DLEQ proof, when the mint sends one, must verify (NUT-12)
   * and is kept with `r`; then `C = C_ − r·K`. Throws on anything else.
   */
  toProof(signature: SerializedBlindedSignature, keyset: HasKeysetKeys): Proof {
    if (signature == null) {
      throw new CTSError(
        'Mint response is missing a signature for one of the outputs. Inputs may already be spent; if the wallet is seeded, try restoring (NUT-09) to recover.',
      );
    }
    const message = this.blindedMessage;
    if (!message.amount.isZero() && signature.id !== message.id) {
      throw new CTSError(
        `Mint signature keyset id ${signature.id} does not match output ${message.id}`,
      );
    }
    const amount = signature.amount.toString();
    const K = keyset.keys[amount];
    const A = pointBytes(K);
    if (K === undefined || A === undefined) {
      throw new CTSError(`Mint has no valid key for amount ${amount}`);
    }

    let dleq: { s: string; e: string; r: string } | undefined;
    if (signature.dleq) {
      const s = bytes32(signature.dleq.s);
      const e = bytes32(signature.dleq.e);
      const B_ = pointBytes(message.B_);
      const C_ = pointBytes(signature.C_);
      if (!s || !e || !B_ || !C_ || !verifyDleq(e, s, A, B_, C_)) {
        throw new CTSError('DLEQ verification failed on mint response');
      }
      dleq = {
        s: Buffer.from(s).toString('hex'),
        e: Buffer.from(e).toString('hex'),
        r: this.blindingFactor.toString(16).padStart(64, '0'),
      };
    }

    return {
      id: signature.id,
      amount: signature.amount,
      C: unblind(signature.C_, this.blindingFactor, K),
      secret: utf8.decode(this.secret),
      ...(dleq && { dleq }),
    };
  }
}

/**
 * The wallet's output creator: random and plainly P2PK-locked outputs are
 * {@link FastOutput}s; every other kind (deterministic, or locks with
 * more than one key, a locktime, tags, blinded keys…) is cashu-ts's own.
 */
export const fastOutputs: OutputDataCreator = {
  createRandomData(amount, keyset, customSplit) {
    return splitAmount(amount, keyset.keys, customSplit).map((part) =>
      this.createSingleRandomData(part, keyset.id),
    );
  },
  createSingleRandomData(amount, keysetId) {
    return FastOutput.create(amount, keysetId, randomHex());
  },
  createP2PKData(p2pk, amount, keyset, customSplit) {
    if (!isPlainLock(p2pk)) {
      return OutputData.createP2PKData(p2pk, amount, keyset, customSplit);
    }
    return splitAmount(amount, keyset.keys, customSplit).map((part) =>
      this.createSingleP2PKData(p2pk, part, keyset.id),
    );
  },
  createSingleP2PKData(p2pk, amount, keysetId, eBytes) {
    if (!isPlainLock(p2pk) || eBytes !== undefined) {
      return OutputData.createSingleP2PKData(p2pk, amount, keysetId, eBytes);
    }
    // NUT-10/11 with one key and no tags, as cashu-ts writes it.
    const secret = JSON.stringify([
      'P2PK',
      { nonce: randomHex(), data: p2pk.pubkey, tags: [] },
    ]);
    return FastOutput.create(amount, keysetId, secret);
  },
  createDeterministicData(amount, seed, counter, keyset, customSplit) {
    return OutputData.createDeterministicData(
      amount,
      seed,
      counter,
      keyset,
      customSplit,
    );
  },
  createSingleDeterministicData(amount, seed, counter, keysetId) {
    return OutputData.createSingleDeterministicData(
      amount,
      seed,
      counter,
      keysetId,
    );
  },
};

/**
 * A swap preview back from its write-ahead record (cashu-ts's
 * `serializeSwapPreview`, written by Paygress before or after this module
 * existed), with {@link FastOutput}s. Each output is checked as cashu-ts
 * checks it: `r` a canonical decimal in [1, n), the secret hex of UTF-8,
 * and `B_ = hash_to_curve(secret) + r·G`. A record with anything else is
 * read by cashu-ts's `deserializeSwapPreview` instead, which gives its
 * own outputs or throws its own error.
 */
export function readSwapPreview(
  serialized: SerializedSwapPreview,
): SwapPreview {
  const { keepOutputs, sendOutputs, ...rest } = serialized;
  let keep: FastOutput[] | undefined;
  let send: FastOutput[] | undefined;
  try {
    keep = keepOutputs?.map(readOutput);
    send = sendOutputs?.map(readOutput);
  } catch {
    return deserializeSwapPreview(serialized);
  }
  return {
    ...deserializeSwapPreview(rest),
    ...(send && { sendOutputs: send }),
    ...(keep && { keepOutputs: keep }),
  };
}

function readOutput(stored: SerializedOutputData): FastOutput {
  const { blindingFactor, secret, blindedMessage } = stored;
  if (stored.ephemeralE !== undefined) throw new Error('P2BK: not ours');
  if (!/^[1-9]\d{0,77}$/.test(blindingFactor)) throw new Error('r');
  const r = BigInt(blindingFactor);
  if (r >= N) throw new Error('r');
  if (!/^(?:[0-9a-fA-F]{2})+$/.test(secret)) throw new Error('secret');
  const bytes = new Uint8Array(Buffer.from(secret, 'hex'));
  utf8.decode(bytes);
  const B_ = blind(hashToCurve(bytes), scalarBytes(r));
  const { amount, B_: written, id } = blindedMessage;
  if (Buffer.from(B_).toString('hex') !== written.toLowerCase()) {
    throw new Error('B_ does not match its secret');
  }
  return new FastOutput(
    { amount: Amount.from(amount), B_: written, id },
    r,
    bytes,
  );
}

/**
 * Whether a lock is the plain one Paygress makes (`lockTo`): one key, in
 * the compressed lower-case form cashu-ts would write, and no other
 * option.
 */
function isPlainLock(p2pk: P2PKOptions): p2pk is P2PKOptions & {
  pubkey: string;
} {
  return (
    typeof p2pk.pubkey === 'string' &&
    /^0[23][0-9a-f]{64}$/.test(p2pk.pubkey) &&
    Object.entries(p2pk).every(([k, v]) => k === 'pubkey' || v === undefined)
  );
}

/** 32 random bytes as hex: a secret, or a P2PK nonce, as cashu-ts's. */
function randomHex(): string {
  return randomBytes(32).toString('hex');
}
