/**
 * Live heap held by the decodings of recent tokens (src/core/token.ts),
 * which lets a token sent again skip decoding: the heap after a full GC
 * with the cache empty, then after 2,048 distinct tokens of about
 * `--chars` characters each have been read and parsed as the gate does
 * (the cache keeps at most 1024, and 4 Mi characters of tokens). Both
 * caches of token.ts fill: the decodings and the recent Ys. Prints one
 * JSON line.
 *
 *   node_modules/.bin/node --expose-gc bench/recent-tokens-memory.ts [--chars 16000]
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { getEncodedToken, type Proof } from '@cashu/cashu-ts';
import { parseToken, readTokenHeader } from '../src/core/token.ts';

const { values } = parseArgs({
  options: { chars: { type: 'string', default: '16000' } },
});
const chars = Number(values.chars);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');

const KEYSET = '00ffd48b8f5ecf80';
const C = `02${'ab'.repeat(32)}`;
const token = (count: number) =>
  getEncodedToken({
    mint: 'https://mint.example',
    unit: 'sat',
    proofs: Array.from(
      { length: count },
      () =>
        ({
          id: KEYSET,
          amount: 8,
          secret: randomBytes(32).toString('hex'),
          C,
        }) as unknown as Proof,
    ),
  });

const settle = async () => {
  await new Promise((resolve) => setTimeout(resolve, 500));
  gc();
  gc();
  return process.memoryUsage();
};

// One token decoded first so the modules are loaded and warm; its length
// per proof sets how many proofs make `chars`.
const probe = token(10);
parseToken(readTokenHeader(probe, 1 << 20), [KEYSET]);
const proofs = Math.max(1, Math.round((chars * 10) / probe.length));
const empty = await settle();
// Each token made, read and dropped: only the caches keep anything.
let length = 0;
for (let i = 0; i < 2048; i++) {
  const encoded = token(proofs);
  length = encoded.length;
  parseToken(readTokenHeader(encoded, 1 << 20), [KEYSET]);
}
const filled = await settle();

const mb = (n: number) => Math.round((n / 1024 / 1024) * 10) / 10;
process.stdout.write(
  `${JSON.stringify({
    tokenChars: length,
    proofsPerToken: proofs,
    tokensRead: 2048,
    heapUsedMB: { empty: mb(empty.heapUsed), filled: mb(filled.heapUsed) },
    addedHeapMB: mb(filled.heapUsed - empty.heapUsed),
  })}\n`,
);
