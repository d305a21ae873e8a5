/**
 * Paygress's outputs (src/mint/outputs.ts) against cashu-ts's own
 * OutputData: the same secret and blinding factor give the same blinded
 * message; the same mint signature gives the same proof, field for field,
 * and every signature cashu-ts refuses is refused too, with the error the
 * gateway turns into the same reason; secrets look as cashu-ts's do, P2PK
 * ones included; and a write-ahead record reads as cashu-ts reads it.
 */
import t from 'tap';
import fc from 'fast-check';
import {
  Amount,
  CTSError,
  OutputData,
  createBlindSignature,
  createDLEQProof,
  createNewMintKeys,
  deserializeSwapPreview,
  pointFromHex,
  serializeSwapPreview,
  type OutputDataLike,
  type Proof,
  type SerializedBlindedSignature,
  type SerializedSwapPreview,
} from '@cashu/cashu-ts';
import { N } from '../../src/core/curve.ts';
import {
  FastOutput,
  fastOutputs,
  readSwapPreview,
} from '../../src/mint/outputs.ts';

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
const pair = createNewMintKeys(8, new Uint8Array(32).fill(7), {
  unit: 'sat',
  versionByte: 1,
});
const keyset = {
  id: pair.keysetId,
  keys: Object.fromEntries(
    Object.entries(pair.pubKeys).map(([amount, key]) => [amount, hex(key)]),
  ),
};
const AMOUNTS = Object.keys(keyset.keys).map(Number);

/** The mint's answer to an output: C_ = k·B_ and its DLEQ proof. */
function sign(output: OutputDataLike): SerializedBlindedSignature {
  const amount = output.blindedMessage.amount.toString();
  const key = pair.privKeys[amount]!;
  const B_ = pointFromHex(output.blindedMessage.B_);
  const { C_ } = createBlindSignature(B_, key, keyset.id);
  const { e, s } = createDLEQProof(B_, key);
  return {
    id: keyset.id,
    amount: Amount.from(amount),
    C_: C_.toHex(true),
    dleq: { e: hex(e), s: hex(s) },
  };
}

/** cashu-ts's OutputData with our output's secret, r and B_. */
function theirsOf(ours: OutputDataLike): OutputData {
  // deserialize recomputes B_ with cashu-ts's curve code and refuses a
  // record whose B_ differs: this is also the check that B_ is the same.
  return OutputData.deserialize(OutputData.serialize(ours));
}

type Outcome =
  { proof: Record<string, unknown> } | { error: unknown; message: string };

function outcome(run: () => Proof): Outcome {
  try {
    const proof = run();
    return {
      proof: {
        keys: Object.keys(proof),
        ...proof,
        amount: proof.amount.toString(),
      },
    };
  } catch (error) {
    return { error, message: (error as Error).message };
  }
}

// The gateway reads a wallet error as PAYGRESS_KEYSET_UNKNOWN when it says
// this (classify in src/mint/cashu-gateway.ts), as PAYGRESS_MINT_ERROR
// otherwise.
const keysetUnknown = (message: string) =>
  /keyset/i.test(message) && /(unknown|not found|no keyset)/i.test(message);

/** Both turn `signature` into the same proof, or both refuse it alike. */
function agree(
  ours: OutputDataLike,
  theirs: OutputDataLike,
  signature: SerializedBlindedSignature,
  keys = keyset,
): 'proof' | 'refused' {
  const a = outcome(() => ours.toProof(signature, keys));
  const b = outcome(() => theirs.toProof(signature, keys));
  if ('proof' in a && 'proof' in b) {
    if (JSON.stringify(a.proof) !== JSON.stringify(b.proof)) {
      throw new Error(`different proofs: ${JSON.stringify([a, b])}`);
    }
    return 'proof';
  }
  if ('error' in a && 'error' in b) {
    if (b.error instanceof CTSError && a.message !== b.message) {
      throw new Error(`different refusals: ${a.message} / ${b.message}`);
    }
    if (keysetUnknown(a.message) !== keysetUnknown(b.message)) {
      throw new Error(`refusals mean different reasons: ${a.message}`);
    }
    return 'refused';
  }
  throw new Error(`only one refused: ${JSON.stringify([a, b])}`);
}

const flip = (text: string) =>
  text.slice(0, -1) + (text.endsWith('0') ? '1' : '0');
const N_HEX = N.toString(16);
const otherPoint = (C_: string) =>
  pointFromHex(C_).add(pointFromHex(keyset.keys['1']!)).toHex(true);

/** Ways to alter a signature; the name says whether it should verify. */
const ALTERED: [string, (s: SerializedBlindedSignature) => unknown][] = [
  ['honest', (s) => s],
  ['without DLEQ proof', ({ dleq: _, ...s }) => s],
  ['upper-case hex', (s) => upper(s)],
  ['C_ uncompressed', (s) => ({ ...s, C_: pointFromHex(s.C_).toHex(false) })],
  ['s changed', (s) => withDleq(s, { s: flip(s.dleq!.s) })],
  ['e changed', (s) => withDleq(s, { e: flip(s.dleq!.e) })],
  ['C_ changed', (s) => ({ ...s, C_: otherPoint(s.C_) })],
  ['C_ not a point', (s) => ({ ...s, C_: `05${s.C_.slice(2)}` })],
  ['C_ hybrid', (s) => ({ ...s, C_: `06${hybrid(s.C_)}` })],
  ['s = 0', (s) => withDleq(s, { s: '0'.repeat(64) })],
  ['e = 0', (s) => withDleq(s, { e: '0'.repeat(64) })],
  ['s = n', (s) => withDleq(s, { s: N_HEX })],
  ['e = 2^256 - 1', (s) => withDleq(s, { e: 'f'.repeat(64) })],
  ['s short', (s) => withDleq(s, { s: s.dleq!.s.slice(2) })],
  ['s odd', (s) => withDleq(s, { s: s.dleq!.s.slice(1) })],
  ['s not hex', (s) => withDleq(s, { s: `${s.dleq!.s.slice(2)}zz` })],
  ['DLEQ proof empty', (s) => ({ ...s, dleq: {} })],
  ['other keyset id', (s) => ({ ...s, id: `00${s.id.slice(2)}` })],
  ['other amount', (s) => ({ ...s, amount: otherAmount(s.amount) })],
  [
    'other amount, no DLEQ proof',
    ({ dleq: _, ...s }) => ({ ...s, amount: otherAmount(s.amount) }),
  ],
  ['amount without key', (s) => ({ ...s, amount: Amount.from(3) })],
  ['missing', () => undefined],
];

t.test('the same proofs and refusals as cashu-ts', async (t) => {
  const seen: Record<string, { proof: number; refused: number }> = {};
  fc.assert(
    fc.property(
      fc.constantFrom(...AMOUNTS),
      fc.boolean(),
      (amount, ourSecret) => {
        // Our output read by cashu-ts, or cashu-ts's read by us.
        let ours: OutputDataLike;
        let theirs: OutputDataLike;
        if (ourSecret) {
          ours = fastOutputs.createSingleRandomData(amount, keyset.id);
          theirs = theirsOf(ours);
        } else {
          theirs = OutputData.createSingleRandomData(amount, keyset.id);
          ours = oursOf(theirs);
        }
        if (!(ours instanceof FastOutput)) throw new Error('not ours');
        const signature = sign(ours);
        for (const [what, alter] of ALTERED) {
          const verdict = agree(
            ours,
            theirs,
            alter(signature) as SerializedBlindedSignature,
          );
          (seen[what] ??= { proof: 0, refused: 0 })[verdict]++;
        }
        return true;
      },
    ),
    { numRuns: 60 },
  );

  const verifying = [
    'honest',
    'without DLEQ proof',
    'upper-case hex',
    'C_ uncompressed',
    // Without a DLEQ proof there is nothing to check C_ against: cashu-ts
    // unblinds whatever the mint sent, and so does Paygress.
    'other amount, no DLEQ proof',
  ];
  for (const [what] of ALTERED) {
    const expected = verifying.includes(what) ? 'proof' : 'refused';
    t.equal(seen[what]?.[expected], 60, `${what}: ${expected} every time`);
  }

  const bad = keyset.keys['1']!.replace(/^0./, '05');
  const output = fastOutputs.createSingleRandomData(1, keyset.id);
  t.equal(
    agree(output, theirsOf(output), sign(output), {
      ...keyset,
      keys: { ...keyset.keys, 1: bad },
    }),
    'refused',
    'a mint key that is not a point',
  );
});

t.test('a proof carries the DLEQ proof with our r', async (t) => {
  const output = fastOutputs.createSingleRandomData(8, keyset.id);
  const signature = sign(output);
  const proof = output.toProof(signature, keyset);
  t.same(proof.dleq, {
    s: signature.dleq!.s,
    e: signature.dleq!.e,
    r: output.blindingFactor.toString(16).padStart(64, '0'),
  });
  t.equal(proof.secret, new TextDecoder().decode(output.secret));
  t.same(Object.keys(output.blindedMessage), ['amount', 'B_', 'id']);
  t.same(
    Object.keys(output.blindedMessage),
    Object.keys(OutputData.createSingleRandomData(8, keyset.id).blindedMessage),
    'blinded messages go on the wire in cashu-ts key order',
  );
  t.same(
    OutputData.serialize(output),
    OutputData.serialize(theirsOf(output)),
    'the same record entry',
  );
});

t.test('secrets as cashu-ts makes them', async (t) => {
  for (const amount of [1, 100, 255, 77]) {
    const ours = fastOutputs.createRandomData(amount, keyset);
    const theirs = OutputData.createRandomData(amount, keyset);
    t.same(amountsOf(ours), amountsOf(theirs), `split of ${amount}`);
    for (const output of [...ours, ...theirs]) {
      t.match(secretOf(output), /^[0-9a-f]{64}$/);
    }
  }
  const split = [1, 1, 2];
  t.same(
    amountsOf(fastOutputs.createRandomData(10, keyset, split)),
    amountsOf(OutputData.createRandomData(10, keyset, split)),
    'with denominations asked for',
  );

  const pubkey = keyset.keys['4']!;
  const lock = { pubkey };
  const ours = fastOutputs.createP2PKData(lock, 100, keyset);
  const theirs = OutputData.createP2PKData(lock, 100, keyset);
  t.same(amountsOf(ours), amountsOf(theirs), 'P2PK split');
  t.ok(ours.every((o) => o instanceof FastOutput));
  const nonce = /"nonce":"[0-9a-f]{64}"/;
  const shapes = new Set(
    [...ours, ...theirs].map((o) => secretOf(o).replace(nonce, 'N')),
  );
  t.same([...shapes], [`["P2PK",{N,"data":"${pubkey}","tags":[]}]`]);
  t.equal(
    new Set(ours.map((o) => JSON.parse(secretOf(o))[1].nonce)).size,
    ours.length,
    'a fresh nonce each',
  );

  // Any other lock is cashu-ts's to make.
  for (const other of [
    { pubkey, locktime: 4_000_000_000 },
    { pubkey: [pubkey, keyset.keys['8']!], requiredSignatures: 2 },
    { pubkey: pubkey.slice(2) },
    { pubkey: pubkey.toUpperCase() },
  ]) {
    const outputs = fastOutputs.createP2PKData(other, 5, keyset);
    t.ok(
      outputs.every((o) => o instanceof OutputData),
      JSON.stringify(other),
    );
  }
  const single = fastOutputs.createSingleP2PKData(
    { pubkey, sigFlag: 'SIG_ALL' },
    4,
    keyset.id,
  );
  t.ok(single instanceof OutputData);
  t.match(secretOf(single), /"sigflag","SIG_ALL"/);
});

t.test('write-ahead records read as cashu-ts reads them', async (t) => {
  const record = recordOf([
    ...OutputData.createRandomData(13, keyset),
    ...fastOutputs.createP2PKData({ pubkey: keyset.keys['2']! }, 6, keyset),
  ]);
  const ours = readSwapPreview(record);
  const theirs = deserializeSwapPreview(record);
  t.ok(ours.keepOutputs!.every((o) => o instanceof FastOutput));
  t.same(serializeSwapPreview(ours), serializeSwapPreview(theirs));
  t.same(serializeSwapPreview(ours), record, 'and back, unchanged');
  for (const [i, output] of ours.keepOutputs!.entries()) {
    const signature = sign(output);
    t.equal(agree(output, theirs.keepOutputs![i]!, signature), 'proof');
  }

  const entry = record.keepOutputs![0]!;
  const other = record.keepOutputs![1]!;
  const broken: [string, unknown][] = [
    ['another B_', { ...entry, blindedMessage: other.blindedMessage }],
    ['r = 0', { ...entry, blindingFactor: '0' }],
    [
      'r with a leading 0',
      { ...entry, blindingFactor: `0${entry.blindingFactor}` },
    ],
    ['r = n', { ...entry, blindingFactor: N.toString() }],
    ['r negative', { ...entry, blindingFactor: '-5' }],
    ['r in hex', { ...entry, blindingFactor: '0x1f' }],
    ['secret not hex', { ...entry, secret: 'zz' }],
    ['secret of odd length', { ...entry, secret: entry.secret.slice(1) }],
    ['secret empty', { ...entry, secret: '' }],
    ['secret not UTF-8', { ...entry, secret: 'ff' }],
    ['no blinded message', { ...entry, blindedMessage: undefined }],
    [
      'amount not a number',
      { ...entry, blindedMessage: { ...entry.blindedMessage, amount: 'x' } },
    ],
  ];
  for (const [what, bad] of broken) {
    const corrupt = { ...record, keepOutputs: [bad, other] };
    const theirs = capture(() => deserializeSwapPreview(corrupt as never));
    const ours = capture(() => readSwapPreview(corrupt as never));
    t.ok(theirs, `cashu-ts refuses a record with ${what}`);
    t.equal(ours, theirs, 'with the same error');
  }
  const notArray = { ...record, keepOutputs: { 0: entry } };
  t.equal(
    capture(() => readSwapPreview(notArray as never)),
    capture(() => deserializeSwapPreview(notArray as never)),
  );

  // A P2BK output (ephemeral key) is not one Paygress makes: cashu-ts's.
  const withE = {
    ...record,
    keepOutputs: [{ ...entry, ephemeralE: keyset.keys['1'] }],
  };
  const read = readSwapPreview(withE);
  t.ok(read.keepOutputs![0] instanceof OutputData);
  t.same(
    serializeSwapPreview(read),
    serializeSwapPreview(deserializeSwapPreview(withE)),
  );
});

function recordOf(outputs: OutputDataLike[]): SerializedSwapPreview {
  return JSON.parse(
    JSON.stringify(
      serializeSwapPreview({
        amount: Amount.from(19),
        fees: Amount.from(0),
        keysetId: keyset.id,
        inputs: [
          {
            id: keyset.id,
            amount: Amount.from(19),
            secret: 'an input',
            C: keyset.keys['1']!,
          },
        ],
        keepOutputs: outputs,
      }),
    ),
  );
}

/** Our output with cashu-ts's secret, r and B_ (read from its record). */
function oursOf(theirs: OutputDataLike): OutputDataLike {
  return readSwapPreview(recordOf([theirs])).keepOutputs![0]!;
}

function upper(s: SerializedBlindedSignature): SerializedBlindedSignature {
  return {
    ...s,
    C_: s.C_.toUpperCase(),
    dleq: { e: s.dleq!.e.toUpperCase(), s: s.dleq!.s.toUpperCase() },
  };
}

function withDleq(
  s: SerializedBlindedSignature,
  change: { e?: string; s?: string },
): SerializedBlindedSignature {
  return { ...s, dleq: { ...s.dleq!, ...change } };
}

function hybrid(C_: string): string {
  return pointFromHex(C_).toHex(false).slice(2);
}

function otherAmount(amount: Amount): Amount {
  return Amount.from(amount.toNumber() === 1 ? 2 : 1);
}

function amountsOf(outputs: OutputDataLike[]): string[] {
  return outputs.map((o) => o.blindedMessage.amount.toString());
}

function secretOf(output: OutputDataLike): string {
  return new TextDecoder().decode(output.secret);
}

/** The message of what `run` throws, or undefined. */
function capture(run: () => unknown): string | undefined {
  try {
    run();
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}
