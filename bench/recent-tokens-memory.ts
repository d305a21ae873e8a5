/**
 * Live heap held by the two caches of src/core/token.ts (the decodings
 * of recent tokens, which let a token sent again skip decoding, and the
 * recent Ys): the heap after a full GC with them empty, then after
 * `--tokens` (2,048) distinct tokens of about `--chars` characters each
 * have been read and parsed as the gate does, for each shape of token:
 *
 * - `hex`: proofs with 64-hex secrets, as wallets make them;
 * - `small`: proofs with the shortest secrets, as many as fit;
 * - `dleq`: `hex` proofs each with a DLEQ proof;
 * - `longsecret`: one proof whose secret is nearly the whole token;
 * - `v3junk`: a cashuA proof whose DLEQ object carries thousands of
 *   extra empty objects.
 *
 * None of these tokens is worth anything: they are what a payer can send
 * without paying. One shape per process, so each starts from empty
 * caches; prints one JSON line.
 *
 *   for shape in hex small dleq longsecret v3junk; do
 *     node_modules/.bin/node --expose-gc bench/recent-tokens-memory.ts --shape $shape [--chars 16000] [--tokens 2048]
 *   done
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { parseToken, readTokenHeader } from '../src/core/token.ts';
import { cashuB, type CborValue } from '../test/support/cbor.ts';

const SHAPES = ['hex', 'small', 'dleq', 'longsecret', 'v3junk'] as const;
const { values } = parseArgs({
  options: {
    chars: { type: 'string', default: '16000' },
    shape: { type: 'string', default: 'hex' },
    tokens: { type: 'string', default: '2048' },
  },
});
const chars = Number(values.chars);
const tokens = Number(values.tokens);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');

const KEYSET = '00ffd48b8f5ecf80';
const MINT = 'https://mint.example';
const point = () => Buffer.concat([Buffer.from([2]), randomBytes(32)]);
let serial = 0;

/** A cashuB token of `count` proofs made by `proof`. */
const v4 = (count: number, proof: () => CborValue) =>
  cashuB({
    m: MINT,
    u: 'sat',
    t: [
      {
        i: Buffer.from(KEYSET, 'hex'),
        p: Array.from({ length: count }, proof),
      },
    ],
  });

const hexProof = () => ({
  a: 8,
  s: randomBytes(32).toString('hex'),
  c: point(),
});
const SHAPE_MAKERS: Record<(typeof SHAPES)[number], (n: number) => string> = {
  hex: (n) => v4(n, hexProof),
  small: (n) => v4(n, () => ({ a: 8, s: (serial++).toString(36), c: point() })),
  dleq: (n) =>
    v4(n, () => ({
      ...hexProof(),
      d: { e: randomBytes(32), s: randomBytes(32), r: randomBytes(32) },
    })),
  longsecret: (n) =>
    v4(1, () => ({ a: 1024, s: `${serial++}-${'x'.repeat(n)}`, c: point() })),
  v3junk: (n) =>
    `cashuA${Buffer.from(
      JSON.stringify({
        token: [
          {
            mint: MINT,
            proofs: [
              {
                id: KEYSET,
                amount: 1024,
                secret: randomBytes(32).toString('hex'),
                C: point().toString('hex'),
                dleq: { e: 'aa', s: 'bb', r: 'cc', j: Array(n).fill({}) },
              },
            ],
          },
        ],
        unit: 'sat',
      }),
    ).toString('base64url')}`,
};

/** The `n` making a token of this shape about `chars` long. */
function sized(make: (n: number) => string): number {
  const a = make(10).length;
  const b = make(20).length;
  return Math.max(1, Math.floor(10 + ((chars - a) * 10) / (b - a)));
}

const settle = async () => {
  await new Promise((resolve) => setTimeout(resolve, 300));
  gc();
  gc();
  return process.memoryUsage();
};

const mb = (n: number) => Math.round((n / 1024 / 1024) * 10) / 10;
const shape = values.shape as (typeof SHAPES)[number];
const make = SHAPE_MAKERS[shape];
if (make === undefined)
  throw new Error(`--shape is one of ${SHAPES.join(', ')}`);
const n = sized(make);
// One token first, so the modules are loaded and warm.
parseToken(readTokenHeader(make(n), 1 << 20), [KEYSET]);
const empty = await settle();
let length = 0;
for (let i = 0; i < tokens; i++) {
  const encoded = make(n);
  length = encoded.length;
  parseToken(readTokenHeader(encoded, 1 << 20), [KEYSET]);
}
const filled = await settle();
process.stdout.write(
  `${JSON.stringify({
    shape,
    tokenChars: length,
    tokensRead: tokens,
    heapUsedMB: { before: mb(empty.heapUsed), after: mb(filled.heapUsed) },
    addedHeapMB: mb(filled.heapUsed - empty.heapUsed),
  })}\n`,
);
