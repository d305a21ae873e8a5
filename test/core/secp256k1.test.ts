/**
 * The two builds of libsecp256k1 behind src/core/secp256k1.ts give the
 * same answer to every operation, on random input and at the edges
 * (infinity, zero and out-of-range scalars, points off the curve), and
 * the native one loads where the `secp256k1` package ships a binary for
 * this machine (so CI cannot quietly fall back to WebAssembly).
 */
import { randomBytes } from 'node:crypto';
import t from 'tap';
import {
  nativeSecp256k1,
  secp256k1For,
  wasmSecp256k1,
  type Secp256k1,
} from '../../src/core/secp256k1.ts';

const hex = (b: Uint8Array | null) => (b ? Buffer.from(b).toString('hex') : b);
const N = Buffer.from(
  'fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141',
  'hex',
);
const ZERO = Buffer.alloc(32);
const ONE = Buffer.from(`${'00'.repeat(31)}01`, 'hex');
// x = 5 has no y on the curve.
const OFF_CURVE = Buffer.from(`02${'00'.repeat(31)}05`, 'hex');

const loaded = nativeSecp256k1();
const native = loaded instanceof Error ? undefined : loaded;
const wasm = wasmSecp256k1();
// libsecp256k1 parses the hybrid encoding (06/07 and x, y) of a point;
// cashu-ts does not, and neither build may.
const HYBRID_OF = wasm.mulBase(ONE, false);
const hybrid = Uint8Array.from(HYBRID_OF);
hybrid[0] = 6 + (HYBRID_OF[64]! & 1);
const HYBRID: [string, (ec: Secp256k1) => Uint8Array | null | boolean][] = [
  ['is a hybrid encoding a point', (ec) => ec.isPoint(hybrid)],
  ['hybrid + G', (ec) => ec.add(hybrid, HYBRID_OF, true)],
  ['k·hybrid', (ec) => ec.mulPublic(hybrid, ONE, true)],
  ['secret k·hybrid', (ec) => ec.mulSecret(hybrid, ONE)],
  ['−hybrid', (ec) => ec.negate(hybrid, true)],
  ['hybrid converted', (ec) => ec.convert(hybrid, true)],
];
const shipsBinary = process.platform === 'linux' && process.arch === 'x64'; // glibc or musl

t.test('the native build loads where the package ships it', async (t) => {
  if (!shipsBinary) {
    t.ok(secp256k1For('auto'), 'auto still gives a build');
    return;
  }
  t.ok(native, `loads: ${loaded instanceof Error ? loaded.message : 'yes'}`);
  t.equal(secp256k1For('auto').name, 'native');
  t.equal(secp256k1For('native').name, 'native');
  t.equal(secp256k1For('wasm').name, 'wasm');
});

/** What an operation gives: its bytes, null, or that it threw. */
function outcome(f: () => Uint8Array | null | boolean): string {
  try {
    const r = f();
    return typeof r === 'boolean' ? String(r) : String(hex(r));
  } catch {
    return 'throws';
  }
}

function scalar(): Buffer {
  for (;;) {
    const k = randomBytes(32);
    if (wasm.isScalar(k)) return k;
  }
}

t.test(
  'both builds agree',
  { skip: !native && 'no native build here' },
  async (t) => {
    const builds: Secp256k1[] = [native!, wasm];
    const same = (
      what: string,
      op: (ec: Secp256k1) => Uint8Array | null | boolean,
    ) => {
      const [a, b] = builds.map((ec) => outcome(() => op(ec)));
      if (a !== b) t.fail(`${what}: native ${a}, wasm ${b}`);
      return a!;
    };

    for (let i = 0; i < 200; i++) {
      const k = scalar();
      const j = scalar();
      const P = wasm.mulBase(k, i % 2 === 0);
      const Q = wasm.mulBase(j, i % 3 === 0);
      for (const c of [true, false]) {
        same('k·G', (ec) => ec.mulBase(k, c));
        same('P + Q', (ec) => ec.add(P, Q, c));
        same('j·P', (ec) => ec.mulPublic(P, j, c));
        same('−P', (ec) => ec.negate(P, c));
        same('convert', (ec) => ec.convert(P, c));
      }
      const product = same('secret j·P', (ec) => ec.mulSecret(P, j));
      t.equal(product, hex(wasm.mulPublic(P, j, false)), 'mulSecret is j·P') ||
        t.bailout();
      same('n − k', (ec) => ec.negateScalar(k));
    }
    t.pass('200 random scalars and points');

    const P = wasm.mulBase(scalar(), true);
    const edges: [string, (ec: Secp256k1) => Uint8Array | null | boolean][] = [
      ['P + (−P) is infinity', (ec) => ec.add(P, ec.negate(P, true), true)],
      ['0·G', (ec) => ec.mulBase(ZERO, true)],
      ['n·G', (ec) => ec.mulBase(N, true)],
      ['1·G', (ec) => ec.mulBase(ONE, true)],
      ['0·P', (ec) => ec.mulPublic(P, ZERO, true)],
      ['n·P', (ec) => ec.mulPublic(P, N, true)],
      ['secret 0·P', (ec) => ec.mulSecret(P, ZERO)],
      ['secret n·P', (ec) => ec.mulSecret(P, N)],
      ['off-curve + P', (ec) => ec.add(OFF_CURVE, P, true)],
      ['k·off-curve', (ec) => ec.mulPublic(OFF_CURVE, ONE, true)],
      ['secret k·off-curve', (ec) => ec.mulSecret(OFF_CURVE, ONE)],
      ['−off-curve', (ec) => ec.negate(OFF_CURVE, true)],
      ['is off-curve a point', (ec) => ec.isPoint(OFF_CURVE)],
      ['is a 32-byte string a point', (ec) => ec.isPoint(P.subarray(1))],
      ['is an empty string a point', (ec) => ec.isPoint(new Uint8Array(0))],
      ['is 0 a scalar', (ec) => ec.isScalar(ZERO)],
      ['is n a scalar', (ec) => ec.isScalar(N)],
      ['is 31 bytes a scalar', (ec) => ec.isScalar(ONE.subarray(1))],
      ['−0', (ec) => ec.negateScalar(ZERO)],
      ['−n', (ec) => ec.negateScalar(N)],
      ['secret (31 bytes)·P', (ec) => ec.mulSecret(P, ONE.subarray(1))],
      [
        'secret (33 bytes)·P',
        (ec) => ec.mulSecret(P, Buffer.concat([ONE, ONE.subarray(31)])),
      ],
      ['is a plain array a point', (ec) => ec.isPoint([...P] as never)],
      ['is a plain array a scalar', (ec) => ec.isScalar([...ONE] as never)],
      ['−(plain array)', (ec) => ec.negate([...P] as never, true)],
      ...HYBRID,
    ];
    for (const [what, op] of edges) t.comment(`${what}: ${same(what, op)}`);
    for (const [what, op] of HYBRID) {
      for (const ec of builds) {
        t.match(
          outcome(() => op(ec)),
          /^(throws|false)$/,
          `${ec.name} refuses ${what}`,
        );
      }
    }
    t.equal(
      outcome(() => native!.add(P, native!.negate(P, true), true)),
      'null',
      'a sum at infinity is null, not an error',
    );
    t.equal(
      outcome(() => native!.mulSecret(P, ZERO)),
      'throws',
    );

    const k = scalar();
    const before = Buffer.from(k);
    native!.negateScalar(k);
    t.same(k, before, 'negating a scalar leaves its bytes alone');
  },
);
