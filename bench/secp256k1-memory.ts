/**
 * Whether the native libsecp256k1 binding keeps memory per call: rounds of
 * every operation Paygress uses (ECDH with a hash function that returns
 * the point, negation, addition, both multiplications, conversion,
 * point check), a forced collection after each round, and the process's
 * RSS and live heap printed. Memory kept per call would grow RSS round
 * by round.
 *
 *   node_modules/.bin/node --expose-gc bench/secp256k1-memory.ts
 *     [--rounds 6] [--calls 40000]
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { nativeSecp256k1 } from '../src/core/secp256k1.ts';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '6' },
    calls: { type: 'string', default: '40000' },
  },
});
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with --expose-gc');
const ec = nativeSecp256k1();
if (ec instanceof Error) throw ec;

const k = randomBytes(32);
const P = ec.mulBase(k, true);
const mb = (bytes: number) => (bytes / 1048576).toFixed(1);
for (let round = 1; round <= Number(values.rounds); round++) {
  for (let i = 0; i < Number(values.calls); i++) {
    const kP = ec.mulSecret(P, k);
    ec.add(P, ec.negate(kP, false), true);
    ec.mulPublic(P, k, false);
    ec.mulBase(k, false);
    ec.convert(kP, true);
    ec.isPoint(P);
  }
  gc();
  const { rss, heapUsed } = process.memoryUsage();
  console.log(
    `round ${round}: RSS ${mb(rss)} MB, heap used ${mb(heapUsed)} MB after ${round * Number(values.calls)} calls of each`,
  );
}
