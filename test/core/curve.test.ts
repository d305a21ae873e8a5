/**
 * The curve arithmetic of src/core/curve.ts, on the native and the
 * WebAssembly build of libsecp256k1 in turn, against the official NUT-00
 * and NUT-12 vectors, and against cashu-ts's own implementation on random
 * inputs: the same secret and blinding factor give the same B_, the same
 * signature the same C, and every DLEQ proof, honest or tampered, the
 * same verdict.
 */
import { readFileSync } from 'node:fs';
import t from 'tap';
import fc from 'fast-check';
import {
  blindMessage,
  createBlindSignature,
  createDLEQProof,
  hashToCurve as cashuHashToCurve,
  pointFromHex,
  unblindSignature,
  verifyDLEQProof,
  verifyDLEQProof_reblind,
} from '@cashu/cashu-ts';
import {
  N,
  blind,
  bytes32,
  hashE,
  hashToCurve,
  pointBytes,
  randomScalar,
  scalarBytes,
  secretToY,
  unblind,
  useSecp256k1,
  verifyDleq,
  verifyProofDleq,
} from '../../src/core/curve.ts';

const fixture = (name: string) =>
  JSON.parse(
    readFileSync(new URL(`../fixtures/nuts/${name}`, import.meta.url), 'utf8'),
  );
const nut00 = fixture('nut00.json');
const nut12 = fixture('nut12.json');

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
const bytes = (text: string) => new Uint8Array(Buffer.from(text, 'hex'));
const big = (b: Uint8Array) => BigInt(`0x${hex(b)}`);
type Point = ReturnType<typeof pointFromHex>;
const G = pointFromHex(
  '0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798',
);

/** A scalar in [1, n) from 32 random bytes, as fast-check draws them. */
const scalar = fc
  .uint8Array({ minLength: 32, maxLength: 32 })
  .map((b) => (big(b) % (N - 1n)) + 1n);

// Every check runs on both builds of libsecp256k1 Paygress can use.
for (const backend of ['native', 'wasm'] as const) {
  t.test(`on the ${backend} build`, async (t) => {
    t.equal(useSecp256k1(backend), backend);
    t.test('NUT-00 vectors', async (t) => {
      for (const v of nut00.hashToCurve) {
        t.equal(hex(hashToCurve(bytes(v.message))), v.point, 'hash_to_curve');
      }
      for (const v of nut00.blindedMessages) {
        const B_ = blind(hashToCurve(bytes(v.x)), bytes(v.r));
        t.equal(hex(B_), v.B_, 'blinded message');
      }
      t.equal(
        secretToY('test'),
        cashuHashToCurve(new TextEncoder().encode('test')).toHex(true),
      );
    });

    t.test('NUT-12 vectors', async (t) => {
      const h = nut12.hashE;
      t.equal(hex(hashE(h.points.map(bytes))), h.hash, 'hash_e');

      const b = nut12.blindSignature;
      const dleq = b.signature.dleq;
      const args = [bytes(b.A), bytes(b.B_), bytes(b.signature.C_)] as const;
      t.ok(
        verifyDleq(bytes(dleq.e), bytes(dleq.s), ...args),
        'blind signature',
      );
      t.notOk(
        verifyDleq(bytes(dleq.s), bytes(dleq.s), ...args),
        'not with e changed',
      );

      const d = nut12.deterministicNonce;
      t.ok(
        verifyDleq(
          bytes(d.e),
          bytes(d.s),
          bytes(d.A),
          bytes(d.B_),
          bytes(d.C_),
        ),
        'a DLEQ proof made with the deterministic nonce',
      );

      const p = nut12.proof;
      const q = p.proof;
      t.ok(
        verifyProofDleq(
          bytes(q.dleq.e),
          bytes(q.dleq.s),
          bytes(q.dleq.r),
          bytes(p.A),
          hashToCurve(Buffer.from(q.secret)),
          bytes(q.C),
        ),
        'a proof, reblinded',
      );
      t.notOk(
        verifyProofDleq(
          bytes(q.dleq.e),
          bytes(q.dleq.s),
          bytes(q.dleq.r),
          bytes(p.A),
          hashToCurve(Buffer.from(`${q.secret}0`)),
          bytes(q.C),
        ),
        'not for another secret',
      );
    });

    t.test('hash_to_curve as cashu-ts on any message', async (t) => {
      fc.assert(
        fc.property(
          fc.oneof(
            fc.uint8Array({ maxLength: 100 }),
            fc.string({ unit: 'binary' }),
          ),
          (message) => {
            const theirs = (m: Uint8Array) => cashuHashToCurve(m).toHex(true);
            if (typeof message === 'string') {
              // Lone surrogates too: both encode as WHATWG UTF-8 does.
              const encoded = new TextEncoder().encode(message);
              return secretToY(message) === theirs(encoded);
            }
            return hex(hashToCurve(message)) === theirs(message);
          },
        ),
        { numRuns: 300 },
      );
      t.pass('300 messages');
    });

    t.test('blinding and unblinding as cashu-ts', async (t) => {
      fc.assert(
        fc.property(
          fc.uint8Array({ minLength: 1, maxLength: 64 }),
          scalar,
          scalar,
          (secret, r, k) => {
            const { B_ } = blindMessage(secret, r);
            const ours = blind(hashToCurve(secret), scalarBytes(r));
            if (hex(ours) !== B_.toHex(true)) return false;

            const key = scalarBytes(k);
            const K = G.multiply(k);
            const { C_ } = createBlindSignature(B_, key, '00');
            const C = unblindSignature(C_, r, K).toHex(true);
            return unblind(C_.toHex(true), r, K.toHex(true)) === C;
          },
        ),
        { numRuns: 150 },
      );
      t.pass('150 secrets, blinding factors and keys');

      // Keys already tabled give the same answers, uncompressed input too.
      const r = big(randomScalar());
      const K = G.multiply(7n);
      const C_ = G.multiply(11n);
      const C = C_.subtract(K.multiply(r)).toHex(true);
      t.equal(unblind(C_.toHex(true), r, K.toHex(true)), C);
      t.equal(unblind(C_.toHex(false), r, K.toHex(true)), C, 'again');
      t.throws(() => unblind(K.multiply(r).toHex(true), r, K.toHex(true)), {
        message: /infinity/,
      });
      t.throws(() => unblind(C_.toHex(true), 0n, K.toHex(true)));
      // A blinding factor outside [1, n) is refused, never cut to 32 bytes.
      t.throws(() => unblind(C_.toHex(true), N + r, K.toHex(true)));
      t.throws(() => unblind(C_.toHex(true), r + (1n << 256n), K.toHex(true)));
      t.throws(() => scalarBytes(1n << 256n), RangeError);
      t.throws(() => scalarBytes(-1n), RangeError);
      t.throws(() => unblind(`05${C_.toHex(true).slice(2)}`, r, K.toHex(true)));
    });

    /** cashu-ts's verdict; it throws on some malformed input: invalid. */
    function theirs(
      e: Uint8Array,
      s: Uint8Array,
      A: string,
      B_: string,
      C_: string,
    ): boolean {
      try {
        const P = pointFromHex;
        return verifyDLEQProof({ e, s }, P(B_), P(C_), P(A));
      } catch {
        return false;
      }
    }

    function ours(
      e: Uint8Array,
      s: Uint8Array,
      A: string,
      B_: string,
      C_: string,
    ): boolean {
      return verifyDleq(e, s, bytes(A), bytes(B_), bytes(C_));
    }

    const NOT_A_POINT = `02${'0'.repeat(63)}5`; // x = 5: no y with y² = 132
    const N_BYTES = scalarBytes(N);

    t.test('the mint DLEQ check agrees with cashu-ts', async (t) => {
      let valid = 0;
      let refused = 0;
      fc.assert(
        fc.property(scalar, scalar, scalar, (k, b, other) => {
          const key = scalarBytes(k);
          const A = G.multiply(k);
          const B_ = G.multiply(b);
          const { C_ } = createBlindSignature(B_, key, '00');
          const { e, s } = createDLEQProof(B_, key);
          const [a, bb, c] = [A, B_, C_].map((p: Point) => p.toHex(true)) as [
            string,
            string,
            string,
          ];
          const elsewhere = G.multiply(other).toHex(true);
          const cases: [
            string,
            Uint8Array,
            Uint8Array,
            string,
            string,
            string,
          ][] = [
            ['honest', e, s, a, bb, c],
            ['uncompressed', e, s, A.toHex(false), B_.toHex(false), c],
            ['e changed', flip(e), s, a, bb, c],
            ['s changed', e, flip(s), a, bb, c],
            ['A changed', e, s, elsewhere, bb, c],
            ['B_ changed', e, s, a, elsewhere, c],
            ['C_ changed', e, s, a, bb, elsewhere],
            ['s = 0', e, new Uint8Array(32), a, bb, c],
            ['e = 0', new Uint8Array(32), s, a, bb, c],
            ['s = n', e, N_BYTES, a, bb, c],
            ['e = n', N_BYTES, s, a, bb, c],
            ['s = 2^256 - 1', e, new Uint8Array(32).fill(255), a, bb, c],
            ['s of 31 bytes', e, s.slice(1), a, bb, c],
            ['C_ not a point', e, s, a, bb, NOT_A_POINT],
            ['A not a point', e, s, NOT_A_POINT, bb, c],
            ['hybrid C_', e, s, a, bb, `06${C_.toHex(false).slice(2)}`],
          ];
          for (const [what, ...args] of cases) {
            const verdict = ours(...args);
            if (verdict !== theirs(...args)) {
              throw new Error(`${what}: ours ${verdict}, cashu-ts differs`);
            }
            if (verdict) valid++;
            else refused++;
          }
          return true;
        }),
        { numRuns: 40 },
      );
      t.equal(valid, 80, 'the honest proofs verify, compressed or not');
      t.equal(refused, 40 * 14, 'every tampered one is refused');

      // R1 = s·G − e·A at infinity: A = (s/e)·G. cashu-ts throws; refused.
      const e = randomScalar();
      const s = randomScalar();
      const inverse = pow(big(e), N - 2n);
      const A = G.multiply((big(s) * inverse) % N).toHex(true);
      const B = G.multiply(3n).toHex(true);
      t.notOk(ours(e, s, A, B, B));
      t.equal(ours(e, s, A, B, B), theirs(e, s, A, B, B));
    });

    t.test('the reblind DLEQ check agrees with cashu-ts', async (t) => {
      let valid = 0;
      fc.assert(
        fc.property(
          fc.string({ minLength: 1, maxLength: 80 }),
          scalar,
          scalar,
          scalar,
          (secret, k, r, other) => {
            const key = scalarBytes(k);
            const A = G.multiply(k);
            const encoded = new TextEncoder().encode(secret);
            const { B_ } = blindMessage(encoded, r);
            const { C_ } = createBlindSignature(B_, key, '00');
            const { e, s } = createDLEQProof(B_, key);
            const C = unblindSignature(C_, r, A);
            const elsewhere = G.multiply(other);
            const cases: [
              string,
              Uint8Array,
              Uint8Array,
              bigint,
              Point,
              string,
              Point,
            ][] = [
              ['honest', e, s, r, A, secret, C],
              ['e changed', flip(e), s, r, A, secret, C],
              ['s changed', e, flip(s), r, A, secret, C],
              ['r changed', e, s, r === 1n ? 2n : r - 1n, A, secret, C],
              ['key changed', e, s, r, elsewhere, secret, C],
              ['secret changed', e, s, r, A, `${secret}.`, C],
              ['C changed', e, s, r, A, secret, elsewhere],
            ];
            for (const [what, e1, s1, r1, A1, secret1, C1] of cases) {
              const verdict = verifyProofDleq(
                e1,
                s1,
                scalarBytes(r1),
                bytes(A1.toHex(true)),
                hashToCurve(new TextEncoder().encode(secret1)),
                bytes(C1.toHex(true)),
              );
              let cashuTs: boolean;
              try {
                cashuTs = verifyDLEQProof_reblind(
                  new TextEncoder().encode(secret1),
                  { e: e1, s: s1, r: r1 },
                  C1,
                  A1,
                );
              } catch {
                cashuTs = false;
              }
              if (verdict !== cashuTs) {
                throw new Error(`${what}: ours ${verdict}, cashu-ts differs`);
              }
              if (verdict) valid++;
            }
            return true;
          },
        ),
        { numRuns: 40 },
      );
      t.equal(valid, 40, 'only the honest proofs verify');
    });

    t.test('reading points and scalars', async (t) => {
      const P = G.multiply(5n);
      const read = (text: unknown) => {
        const point = pointBytes(text);
        return point && hex(point);
      };
      t.equal(read(P.toHex(true)), P.toHex(true));
      t.equal(read(P.toHex(true).toUpperCase()), P.toHex(true));
      t.equal(read(P.toHex(false)), P.toHex(false));
      for (const bad of [
        NOT_A_POINT,
        `06${P.toHex(false).slice(2)}`,
        `04${P.toHex(true).slice(2)}`,
        P.toHex(true).slice(0, -2),
        `${P.toHex(true)}00`,
        ` ${P.toHex(true).slice(1)}`,
        '',
        42,
        undefined,
      ]) {
        t.equal(pointBytes(bad), undefined, `not a point: ${String(bad)}`);
        let cashuTs = true;
        try {
          pointFromHex(bad as string);
        } catch {
          cashuTs = false;
        }
        t.equal(cashuTs, false, 'nor for cashu-ts');
      }
      t.equal(hex(bytes32('AB'.repeat(32))!), 'ab'.repeat(32));
      t.equal(bytes32('ab'.repeat(31)), undefined);
      t.equal(bytes32(`${'ab'.repeat(31)}zz`), undefined);

      const seen = new Set<string>();
      for (let i = 0; i < 100; i++) {
        const r = randomScalar();
        t.equal(r.length, 32);
        t.ok(big(r) > 0n && big(r) < N);
        seen.add(hex(r));
      }
      t.equal(seen.size, 100, 'blinding factors do not repeat');
    });
  });
}

/** The bytes with the last bit flipped. */
function flip(b: Uint8Array): Uint8Array {
  const copy = Uint8Array.from(b);
  copy[copy.length - 1]! ^= 1;
  return copy;
}

function pow(base: bigint, exponent: bigint): bigint {
  let result = 1n;
  for (let b = base % N, x = exponent; x > 0n; x >>= 1n, b = (b * b) % N) {
    if (x & 1n) result = (result * b) % N;
  }
  return result;
}
