/**
 * What a refusal asks for against a mint that charges input fees: the
 * least amount whose split into the fewest proofs is still worth the price
 * after the fees of those proofs.
 */
import fc from 'fast-check';
import t from 'tap';
import { withInputFees } from '../../src/core/gate.ts';

const bits = (n: number) => n.toString(2).replaceAll('0', '').length;
const net = (amount: number, ppk: number) =>
  amount - Math.ceil((bits(amount) * ppk) / 1000);

t.test('no fee: the price itself', async (t) => {
  t.equal(withInputFees(100, 0), 100);
  t.equal(withInputFees(1, 0), 1);
});

t.test('worked examples', async (t) => {
  // 101 = 64 + 32 + 4 + 1: 4 proofs × 100 ppk = 0.4, one sat.
  t.equal(withInputFees(100, 100), 101);
  // A sat a proof: 1024 and 1025 are worth 1023 after their fees;
  // 1026 = 1024 + 2 is worth 1024.
  t.equal(withInputFees(1024, 1000), 1026);
  t.equal(net(1026, 1000), 1024);
});

t.test('the least amount worth the price after its fees', async (t) => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 2 ** 31 - 1 }),
      fc.integer({ min: 1, max: 5000 }),
      (price, ppk) => {
        const amount = withInputFees(price, ppk);
        if (net(amount, ppk) < price) return false;
        // Nothing smaller (and at least the price) would do.
        for (let less = price; less < amount; less++) {
          if (net(less, ppk) >= price) return false;
        }
        return true;
      },
    ),
    { numRuns: 2000 },
  );
  t.pass('2,000 prices and fees');
});

t.test('an absurd fee is bounded, not searched one by one', async (t) => {
  const ppk = 10 ** 9;
  const amount = withInputFees(100, ppk);
  t.ok(net(amount, ppk) >= 100, 'still worth the price');
  t.equal(amount, 100 + Math.ceil((53 * ppk) / 1000));
});
