/**
 * The wallet-side curve work of one redemption of 3 proofs into 3 outputs
 * (100 sat: 64 + 32 + 4), before and after it moved to libsecp256k1, with
 * no mint and no I/O: the DLEQ check of each incoming proof, making the
 * outputs, writing and reading the write-ahead record, and turning each
 * signature into a proof (the mint's DLEQ proof checked, then unblinded).
 * The mint's signing is done between the timed parts and not counted.
 *
 *   node_modules/.bin/node bench/redeem-crypto.ts [rounds]
 *
 * "cashu-ts" is cashu-ts 4.13's own outputs with the variable-time
 * @noble/curves check of incoming proofs Paygress had before
 * src/core/curve.ts; the other two are src/mint/outputs.ts and
 * src/mint/dleq.ts on each build of libsecp256k1 (src/core/secp256k1.ts).
 * Each round runs all three, in rotating order; the mint keys' tables
 * are warm, as in a running Paygress.
 */
import { randomBytes } from 'node:crypto';
import {
  Amount,
  OutputData,
  createBlindSignature,
  createDLEQProof,
  createNewMintKeys,
  deserializeSwapPreview,
  hash_e,
  pointFromHex,
  serializeSwapPreview,
  type OutputDataLike,
  type Proof,
  type SerializedBlindedSignature,
  type SerializedSwapPreview,
  type SwapPreview,
} from '@cashu/cashu-ts';
import { useSecp256k1 } from '../src/core/curve.ts';
import type { WireProof } from '../src/core/ports.ts';
import { computeY } from '../src/core/token.ts';
import { verifyProofDleq } from '../src/mint/dleq.ts';
import { fastOutputs, readSwapPreview } from '../src/mint/outputs.ts';

const rounds = Number(process.argv[2] ?? 300);
const G = pointFromHex(
  '0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798',
).precompute(8, false);
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');

const pair = createNewMintKeys(8, randomBytes(32), { unit: 'sat' });
const keyset = {
  id: pair.keysetId,
  keys: Object.fromEntries(
    Object.entries(pair.pubKeys).map(([amount, key]) => [amount, hex(key)]),
  ),
};

/** The mint: C_ = k·B_ with its DLEQ proof. */
function sign(output: OutputDataLike): SerializedBlindedSignature {
  const amount = output.blindedMessage.amount.toString();
  const key = pair.privKeys[amount]!;
  const B_ = pointFromHex(output.blindedMessage.B_);
  const { e, s } = createDLEQProof(B_, key);
  return {
    id: keyset.id,
    amount: Amount.from(amount),
    C_: createBlindSignature(B_, key, keyset.id).C_.toHex(true),
    dleq: { e: hex(e), s: hex(s) },
  };
}

/** Three proofs of 64, 32 and 4 sat with DLEQ proofs, as a payer sends. */
function payment(): WireProof[] {
  const outputs = OutputData.createRandomData(100, keyset);
  return outputs.map((output) => {
    const { id, amount, secret, C, dleq } = output.toProof(
      sign(output),
      keyset,
    );
    computeY(secret); // as reading the token does, before the checks
    return { id, amount: amount.toNumber(), secret, C, dleq: dleq! };
  });
}

interface Path {
  check(proof: WireProof): boolean;
  outputs(): OutputDataLike[];
  read(record: SerializedSwapPreview): SwapPreview;
}

const before: Path = {
  check: previousDleqCheck,
  outputs: () => OutputData.createRandomData(100, keyset),
  read: deserializeSwapPreview,
};
const after: Path = {
  check: (proof) => verifyProofDleq(proof, keyset.keys[String(proof.amount)]!),
  outputs: () => fastOutputs.createRandomData(100, keyset),
  read: readSwapPreview,
};

/** One redemption's curve work on `path`, in ms, mint signing excluded. */
function redeem(path: Path, proofs: WireProof[]): number {
  const started = performance.now();
  for (const proof of proofs) {
    if (!path.check(proof)) throw new Error('DLEQ proof refused');
  }
  const record = JSON.stringify(
    serializeSwapPreview({
      amount: Amount.from(100),
      fees: Amount.from(0),
      keysetId: keyset.id,
      inputs: proofs.map((p) => ({ ...p, amount: Amount.from(p.amount) })),
      keepOutputs: path.outputs(),
    }),
  );
  const preview = path.read(JSON.parse(record) as SerializedSwapPreview);
  const prepared = performance.now() - started;

  const outputs = preview.keepOutputs!;
  const signatures = outputs.map(sign);

  const unblinding = performance.now();
  const proofsOut: Proof[] = outputs.map((o, i) =>
    o.toProof(signatures[i]!, keyset),
  );
  if (proofsOut.length !== 3) throw new Error('expected three proofs');
  return prepared + (performance.now() - unblinding);
}

// Each round runs every path once, in an order that rotates.
const paths: Record<string, () => Path> = {
  'cashu-ts': () => before,
  'libsecp256k1 wasm': () => (useSecp256k1('wasm'), after),
  'libsecp256k1 native': () => (useSecp256k1('native'), after),
};
const names = Object.keys(paths);
const times = new Map(names.map((name) => [name, [] as number[]]));
const payments = Array.from({ length: rounds + 20 }, payment);
for (const [i, proofs] of payments.entries()) {
  for (let j = 0; j < names.length; j++) {
    const name = names[(i + j) % names.length]!;
    const took = redeem(paths[name]!(), proofs);
    if (i >= 20) times.get(name)!.push(took);
  }
}

const median = (list: number[]) => {
  const sorted = [...list].sort((x, y) => x - y);
  return sorted[Math.floor(sorted.length / 2)]!;
};
const p90 = (list: number[]) =>
  [...list].sort((x, y) => x - y)[Math.floor(list.length * 0.9)]!;
const base = median(times.get('cashu-ts')!);
for (const [name, list] of times) {
  console.log(
    `${name}: median ${median(list).toFixed(2)} ms, p90 ${p90(list).toFixed(2)} ms (${list.length} redemptions), ${(base / median(list)).toFixed(1)}x cashu-ts`,
  );
}

/**
 * The check of an incoming proof's DLEQ proof Paygress had before
 * src/core/curve.ts: @noble/curves in variable time (all values public).
 */
function previousDleqCheck(proof: WireProof): boolean {
  const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
  const dleq = proof.dleq!;
  const [e, s, r] = [dleq.e, dleq.s, dleq.r!].map((x) => BigInt(`0x${x}`)) as [
    bigint,
    bigint,
    bigint,
  ];
  const A = pointFromHex(keyset.keys[String(proof.amount)]!);
  const Y = pointFromHex(computeY(proof.secret));
  const blinded = G.multiplyUnsafe(r).add(Y);
  const signed = A.multiplyUnsafe(r).add(pointFromHex(proof.C));
  const R1 = G.mulAddUnsafe(s, A, N - e);
  const R2 = blinded.mulAddUnsafe(s, signed, N - e);
  return hex(hash_e([R1, R2, A, signed])) === dleq.e;
}
