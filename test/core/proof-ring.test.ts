import { randomBytes } from 'node:crypto';
import t from 'tap';
import fc from 'fast-check';
import { ProofRing } from '../../src/core/proof-ring.ts';
import { fingerprint } from '../../src/core/replay-guard.ts';

/** The obvious model: a FIFO queue of hex keys. */
class Model {
  readonly keys: string[] = [];
  readonly capacity: number;
  constructor(capacity: number) {
    this.capacity = capacity;
  }
  has(fp: Uint8Array) {
    return this.keys.includes(Buffer.from(fp).toString('hex'));
  }
  add(fp: Uint8Array) {
    const key = Buffer.from(fp).toString('hex');
    if (this.keys.includes(key)) return;
    if (this.keys.length === this.capacity) this.keys.shift();
    this.keys.push(key);
  }
}

t.test('behaves as a FIFO set, whatever the order of adds', async (t) => {
  // Few distinct values and small tables force collisions, long probe
  // runs, wrap-around and backward-shift deletion.
  const value = fc.integer({ min: 0, max: 40 }).map((n) => {
    const fp = new Uint8Array(16);
    fp[0] = n % 8; // same home slot for many values
    fp[15] = n;
    return fp;
  });
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 12 }),
      fc.array(fc.tuple(fc.boolean(), value), { maxLength: 200 }),
      (capacity, ops) => {
        const ring = new ProofRing(capacity);
        const model = new Model(capacity);
        for (const [isAdd, fp] of ops) {
          if (isAdd) {
            ring.add(fp);
            model.add(fp);
          }
          if (ring.has(fp) !== model.has(fp)) return false;
          if (ring.size !== model.keys.length) return false;
        }
        for (let n = 0; n <= 40; n++) {
          const fp = new Uint8Array(16);
          fp[0] = n % 8;
          fp[15] = n;
          if (ring.has(fp) !== model.has(fp)) return false;
        }
        return true;
      },
    ),
    { numRuns: 500 },
  );
  t.pass('matches the model');
});

t.test('keeps the newest capacity entries of many', async (t) => {
  const ring = new ProofRing(1000);
  const all = Array.from(
    { length: 5000 },
    () => new Uint8Array(randomBytes(16)),
  );
  for (const fp of all) ring.add(fp);
  t.equal(ring.size, 1000);
  t.ok(
    all.slice(-1000).every((fp) => ring.has(fp)),
    'the newest are kept',
  );
  t.ok(
    all.slice(0, 4000).every((fp) => !ring.has(fp)),
    'the oldest are gone',
  );
});

t.test('fingerprints use the whole x-coordinate', async (t) => {
  const y = '02' + 'ab'.repeat(32);
  const tail = '02' + 'ab'.repeat(31) + 'ac';
  t.notSame(fingerprint(y), fingerprint(tail));
  t.equal(fingerprint(y).length, 16);
});

t.test('refuses a capacity that is not a positive integer', async (t) => {
  for (const bad of [0, -1, 1.5, Number.NaN]) {
    t.throws(() => new ProofRing(bad), RangeError);
  }
});
