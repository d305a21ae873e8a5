/**
 * What one secp256k1 multiplication costs in the pure-JavaScript curve
 * code cashu-ts uses, constant-time (secret scalars: blinding,
 * unblinding) and variable-time (public values: DLEQ checks), on the
 * generator (precomputed tables) and on another point.
 *
 *   node_modules/.bin/node bench/curve-cost.ts
 */
import { pointFromHex } from '@cashu/cashu-ts';

const G = pointFromHex(
  '0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798',
);
const k = 0x1234567890abcdef1234567890abcdef1234567890abcdef1234567890abcn;
const P = G.multiply(k);

function time(name: string, run: (i: bigint) => unknown, n = 200): void {
  for (let i = 0n; i < 20n; i++) run(i);
  const started = performance.now();
  for (let i = 0n; i < BigInt(n); i++) run(i);
  const ms = (performance.now() - started) / n;
  console.log(`${name}: ${ms.toFixed(3)} ms`);
}

time('G.multiply (constant-time)', (i) => G.multiply(k + i));
time('G.multiplyUnsafe (variable-time)', (i) => G.multiplyUnsafe(k + i));
time('P.multiply (constant-time)', (i) => P.multiply(k + i));
time('P.multiplyUnsafe (variable-time)', (i) => P.multiplyUnsafe(k + i));
