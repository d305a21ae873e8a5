/**
 * What one secp256k1 multiplication costs in the pure-JavaScript curve
 * code cashu-ts uses, constant-time (secret scalars: blinding,
 * unblinding) and variable-time (public values: DLEQ checks), on the
 * generator (precomputed tables) and on another point; then the same
 * products of an arbitrary point in each build of libsecp256k1 Paygress
 * can use (src/core/secp256k1.ts; the WebAssembly build's secret product
 * is noble's, with a table per point).
 *
 *   node_modules/.bin/node bench/curve-cost.ts
 */
import { pointFromHex } from '@cashu/cashu-ts';
import {
  nativeSecp256k1,
  wasmSecp256k1,
  type Secp256k1,
} from '../src/core/secp256k1.ts';

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

const native = nativeSecp256k1();
const builds: Secp256k1[] = [wasmSecp256k1()];
if (native instanceof Error) console.log(`no native build: ${native.message}`);
else builds.push(native);
const scalar = (i: bigint) =>
  Buffer.from((k + i).toString(16).padStart(64, '0'), 'hex');
const point = P.toBytes(true);
for (const ec of builds) {
  time(`${ec.name} mulPublic (variable-time)`, (i) =>
    ec.mulPublic(point, scalar(i), false),
  );
  time(`${ec.name} mulSecret (constant-time)`, (i) =>
    ec.mulSecret(point, scalar(i)),
  );
}
