/**
 * The secp256k1 operations a redemption needs, from one of two builds of
 * libsecp256k1:
 *
 * - `native`: the `secp256k1` package's Node-API addon, loaded from the
 *   prebuilt binary the package ships (linux-x64 glibc and musl,
 *   darwin-arm64, win32-x64; nothing is compiled at install).
 * - `wasm`: `tiny-secp256k1`, libsecp256k1 compiled to WebAssembly, which
 *   runs everywhere Node does. It has no constant-time product of a
 *   secret scalar and an arbitrary point, so that one operation runs on
 *   @noble/curves (as cashu-ts does) with a precomputed table per key.
 *
 * One multiplication of an arbitrary point by a public scalar took 37 µs
 * native and 175 µs in WebAssembly, by a secret one 49 and 367 µs
 * (`node_modules/.bin/node bench/curve-cost.ts`, 2-core Intel Xeon VM).
 *
 * Both give the same answers (test/core/secp256k1.test.ts holds them to
 * each other and test/core/curve.test.ts to cashu-ts); `auto` takes the
 * native one where its binary loads.
 *
 * Which operations may touch a secret. A blinding factor `r` of our own
 * is secret (with `B_` it reveals `Y`, linking the proof to its swap), so
 * it meets only operations that are constant-time in it. Read in
 * libsecp256k1's `secp256k1.c`, `eckey_impl.h` and `modules/ecdh`, in the
 * copy each package builds (the `secp256k1` package ships its source;
 * tiny-secp256k1 2.2.4's .wasm is rust-secp256k1's copy, symbols
 * `rustsecp256k1_v0_8_1_*`), which say the same:
 *
 * - {@link Secp256k1.mulBase} is `secp256k1_ec_pubkey_create`:
 *   `ecmult_gen`, constant-time, its table blinded by the context seed.
 * - {@link Secp256k1.add} is `secp256k1_ec_pubkey_combine`: `gej_add_ge`,
 *   the constant-time addition.
 * - {@link Secp256k1.mulPublic} is `secp256k1_ec_pubkey_tweak_mul`, which
 *   calls `secp256k1_ecmult`: variable-time wNAF (a scalar below 2^16
 *   takes a fifth of the time of a random one). Public scalars only.
 * - {@link Secp256k1.mulSecret} is, natively, `secp256k1_ecdh` with a hash
 *   function that returns the shared point itself: `ecmult_const`,
 *   constant-time in the scalar. In the WebAssembly build, noble's
 *   constant-time (and scalar-blinded) multiplication.
 * - {@link Secp256k1.negate} is, natively, `secp256k1_ec_pubkey_negate`
 *   (`ge_neg`, a field negation); in the WebAssembly build noble's.
 *   Both constant-time: unblinding negates `r·K`.
 */
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { pointFromHex } from '@cashu/cashu-ts';
import { LRUCache } from 'lru-cache';
import * as tiny from 'tiny-secp256k1';

/** Which build of libsecp256k1 does the arithmetic. */
export type CurveBackend = 'native' | 'wasm';

/**
 * Points are compressed (33 bytes, `02`/`03`) or uncompressed (65 bytes,
 * `04`) encodings, as cashu-ts reads them: libsecp256k1 would also parse
 * the hybrid `06`/`07` form, which both builds refuse. Scalars are 32
 * bytes big-endian. An operation given anything else, or a point off the
 * curve, throws; both builds answer alike (test/core/secp256k1.test.ts).
 */
export interface Secp256k1 {
  readonly name: CurveBackend;
  /** Whether the bytes encode a point on the curve. */
  isPoint(p: Uint8Array): boolean;
  /** Whether the bytes are a scalar in [1, n). */
  isScalar(k: Uint8Array): boolean;
  /** `n − k`, a new array. */
  negateScalar(k: Uint8Array): Uint8Array;
  /** `k·G`, constant-time in `k`; throws unless `k` is in [1, n). */
  mulBase(k: Uint8Array, compressed: boolean): Uint8Array;
  /** `P + Q`, constant-time; null when the sum is infinity. */
  add(P: Uint8Array, Q: Uint8Array, compressed: boolean): Uint8Array | null;
  /** `k·P` in variable time: for public `k` only. */
  mulPublic(P: Uint8Array, k: Uint8Array, compressed: boolean): Uint8Array;
  /** `k·P`, constant-time in `k`, uncompressed; `k` in [1, n). */
  mulSecret(P: Uint8Array, k: Uint8Array): Uint8Array;
  /** `−P`. */
  negate(P: Uint8Array, compressed: boolean): Uint8Array;
  /** The same point in the other encoding (or the same one). */
  convert(P: Uint8Array, compressed: boolean): Uint8Array;
}

/** The part of the `secp256k1` package's binding Paygress calls. */
interface Binding {
  contextRandomize(seed: Uint8Array): void;
  privateKeyVerify(k: Uint8Array): boolean;
  privateKeyNegate(k: Uint8Array): Uint8Array;
  publicKeyVerify(p: Uint8Array): boolean;
  publicKeyCreate(k: Uint8Array, compressed: boolean): Uint8Array;
  publicKeyConvert(p: Uint8Array, compressed: boolean): Uint8Array;
  publicKeyNegate(p: Uint8Array, compressed: boolean): Uint8Array;
  publicKeyCombine(ps: Uint8Array[], compressed: boolean): Uint8Array;
  publicKeyTweakMul(
    p: Uint8Array,
    k: Uint8Array,
    compressed: boolean,
  ): Uint8Array;
  ecdh(
    p: Uint8Array,
    k: Uint8Array,
    options: { hashfn: (x: Uint8Array, y: Uint8Array) => Uint8Array },
    output: Uint8Array,
  ): Uint8Array;
}

/** The shared point of an ECDH, unhashed: `04 || x || y`. */
function wholePoint(x: Uint8Array, y: Uint8Array): Uint8Array {
  const point = new Uint8Array(65);
  point[0] = 4;
  point.set(x, 1);
  point.set(y, 33);
  return point;
}

function nativeBackend(ec: Binding): Secp256k1 {
  // Seeds the blinding of `ecmult_gen` from node:crypto.
  ec.contextRandomize(randomBytes(32));
  return {
    name: 'native',
    isPoint: (p) => ec.publicKeyVerify(p),
    isScalar: (k) => ec.privateKeyVerify(k),
    negateScalar: (k) => ec.privateKeyNegate(Uint8Array.from(k)),
    mulBase: (k, compressed) => ec.publicKeyCreate(k, compressed),
    add(P, Q, compressed) {
      try {
        return ec.publicKeyCombine([P, Q], compressed);
      } catch (err) {
        // Two points that sum to infinity: null, as tiny-secp256k1 says.
        if (ec.publicKeyVerify(P) && ec.publicKeyVerify(Q)) return null;
        throw err;
      }
    },
    mulPublic: (P, k, compressed) => ec.publicKeyTweakMul(P, k, compressed),
    mulSecret: (P, k) =>
      ec.ecdh(P, k, { hashfn: wholePoint }, new Uint8Array(65)),
    negate: (P, compressed) => ec.publicKeyNegate(P, compressed),
    convert: (P, compressed) => ec.publicKeyConvert(P, compressed),
  };
}

// Seeds the context's blinding of `ecmult_gen` from node:crypto; without
// this call tiny-secp256k1 seeds it from a stack address on first use.
tiny.__initializeContext();

// A mint has one key per amount and rarely more than a few keysets; each
// table is about 120 KiB and takes ~20 ms to build, and makes noble's
// constant-time multiplication about five times faster.
const tables = new LRUCache<string, ReturnType<typeof pointFromHex>>({
  max: 64,
});

const wasm: Secp256k1 = guarded({
  name: 'wasm',
  isPoint: (p) => tiny.isPoint(p),
  isScalar: (k) => tiny.isPrivate(k),
  negateScalar: (k) => tiny.privateNegate(k),
  mulBase(k, compressed) {
    const product = tiny.pointFromScalar(k, compressed);
    if (!product) throw new Error('scalar out of range');
    return product;
  },
  add: (P, Q, compressed) => tiny.pointAdd(P, Q, compressed),
  mulPublic(P, k, compressed) {
    const product = tiny.pointMultiply(P, k, compressed);
    if (!product) throw new Error('product at infinity');
    return product;
  },
  mulSecret(P, k) {
    const key = Buffer.from(tiny.pointCompress(P, true)).toString('hex');
    let table = tables.get(key);
    if (table === undefined) {
      table = pointFromHex(key).precompute(6, true);
      tables.set(key, table);
    }
    return table
      .multiply(BigInt(`0x${Buffer.from(k).toString('hex')}`))
      .toBytes(false);
  },
  // noble's negation (of the field element y): constant-time, where a
  // multiplication by n − 1 would run libsecp256k1's variable-time code
  // over a point made from a secret.
  negate: (P, compressed) =>
    pointFromHex(Buffer.from(P).toString('hex')).negate().toBytes(compressed),
  convert: (P, compressed) => tiny.pointCompress(P, compressed),
});

/**
 * Whether `p` is in an encoding cashu-ts (and so both builds) reads:
 * compressed, or uncompressed `04`. Whether it lies on the curve is
 * checked by the operation that parses it.
 */
function encoded(p: unknown): p is Uint8Array {
  return (
    p instanceof Uint8Array &&
    ((p.length === 33 && (p[0] === 2 || p[0] === 3)) ||
      (p.length === 65 && p[0] === 4))
  );
}

function point(p: unknown): Uint8Array {
  if (!encoded(p)) throw new Error('not a point encoding cashu-ts reads');
  return p;
}

function scalar(k: unknown): Uint8Array {
  if (!(k instanceof Uint8Array) || k.length !== 32) {
    throw new Error('a scalar is 32 bytes');
  }
  return k;
}

/**
 * A build held to the interface's contract: the encodings and lengths
 * each package would otherwise read its own way are refused first, and
 * scalars that must be in [1, n) are checked, so both builds agree on
 * every input.
 */
function guarded(ec: Secp256k1): Secp256k1 {
  const inRange = (k: unknown) => {
    if (!ec.isScalar(scalar(k))) throw new Error('scalar out of range');
    return k as Uint8Array;
  };
  return {
    name: ec.name,
    isPoint: (p) => encoded(p) && ec.isPoint(p),
    isScalar: (k) =>
      k instanceof Uint8Array && k.length === 32 && ec.isScalar(k),
    negateScalar: (k) => ec.negateScalar(inRange(k)),
    mulBase: (k, compressed) => ec.mulBase(inRange(k), compressed),
    add: (P, Q, compressed) => ec.add(point(P), point(Q), compressed),
    mulPublic: (P, k, compressed) =>
      ec.mulPublic(point(P), inRange(k), compressed),
    mulSecret: (P, k) => ec.mulSecret(point(P), inRange(k)),
    negate: (P, compressed) => ec.negate(point(P), compressed),
    convert: (P, compressed) => ec.convert(point(P), compressed),
  };
}

let loaded: Secp256k1 | Error | undefined;

/**
 * The native build, or the error that kept it from loading (no prebuilt
 * binary for this platform, or one that does not load).
 */
export function nativeSecp256k1(): Secp256k1 | Error {
  if (loaded === undefined) {
    try {
      const require = createRequire(import.meta.url);
      loaded = guarded(nativeBackend(require('secp256k1/bindings') as Binding));
    } catch (err) {
      loaded = err instanceof Error ? err : new Error(String(err));
    }
  }
  return loaded;
}

/** The WebAssembly build. */
export function wasmSecp256k1(): Secp256k1 {
  return wasm;
}

/**
 * The build for a setting: `auto` is the native one where it loads, else
 * the WebAssembly one; `native` throws when it does not load.
 */
export function secp256k1For(setting: 'auto' | CurveBackend): Secp256k1 {
  if (setting === 'wasm') return wasm;
  const native = nativeSecp256k1();
  if (!(native instanceof Error)) return native;
  if (setting === 'auto') return wasm;
  throw new Error(
    `the native secp256k1 build does not load on this platform (${native.message}); set secp256k1 to auto or wasm`,
  );
}
