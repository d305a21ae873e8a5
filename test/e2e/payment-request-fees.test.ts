/**
 * The NUT-18 request in a 402 is what a wallet pays. Against a mint that
 * charges input fees (NUT-02), the fee of Paygress's swap comes off the
 * token, so the request names the price plus the fee of a token of the
 * fewest proofs: a cashu-ts wallet that decodes it with cashu-ts's own
 * decoder and sends exactly that amount buys the request. (It used to
 * name the bare price, and the refusal repeated it: a wallet following
 * the request could never pay.)
 */
import t from 'tap';
import { decodePaymentRequest, getEncodedToken } from '@cashu/cashu-ts';
import { mintProofs, testWallet } from '../support/wallet.ts';
import { PROTOCOLS, send, startStack } from '../support/stack.ts';

const PRICE = 100;
// 0.1 sat per input proof: a 100 sat token of 64 + 32 + 4 costs 1 sat.
const stack = await startStack({ price: PRICE, inputFeePpk: 100 });
t.teardown(() => stack.close());

for (const protocol of PROTOCOLS) {
  t.test(
    `${protocol}: paying exactly what the 402 asks buys the request`,
    async (t) => {
      const asked = await send(stack, protocol);
      t.equal(asked.reason, 'PAYGRESS_PAYMENT_REQUIRED');
      const request = decodePaymentRequest(asked.paymentRequest!);
      const amount = request.amount!.toNumber();
      const mint = request.mints![0]!;

      const wallet = await testWallet(mint, request.unit);
      const funds = await mintProofs(mint, 4 * PRICE, { wallet });
      const { send: proofs } = await wallet.send(amount, funds);
      const token = getEncodedToken({ mint, unit: request.unit!, proofs });

      // 101 = 64 + 32 + 4 + 1: four proofs, 0.4 sat of fees, rounded up.
      t.equal(amount, PRICE + 1, 'the price and the fee of four proofs');
      const paid = await send(stack, protocol, { 'X-Cashu': token });
      t.equal(paid.allowed, true, 'the payment the request asked for');
      t.equal(
        paid.headers['x-payment-amount'],
        String(PRICE),
        'worth the price after the fee',
      );
    },
  );
}

// A wallet holding change pays the amount asked in more proofs than the
// fewest (cashu-ts takes an exact match of what it holds), so the fees
// are more than the request counted. The refusal used to ask for the same
// amount again, which such a wallet then paid the same way for ever.
const FEW = await startStack({ price: 5, inputFeePpk: 400 });
t.teardown(() => FEW.close());

for (const protocol of PROTOCOLS) {
  t.test(
    `${protocol}: a token short by the fees of its extra proofs is asked for what they need`,
    async (t) => {
      const request = decodePaymentRequest(
        (await send(FEW, protocol)).paymentRequest!,
      );
      // 6 = 4 + 2: two proofs, 0.8 sat of fees, rounded up.
      t.equal(request.amount!.toNumber(), 6);
      const mint = request.mints![0]!;
      const wallet = await testWallet(mint);
      const quote = await wallet.createMintQuoteBolt11(6);
      const held = await wallet.mintProofsBolt11(6, quote, undefined, {
        type: 'random',
        denominations: [4, 1, 1],
      });
      const threeProofs = getEncodedToken({ mint, unit: 'sat', proofs: held });

      const short = await send(FEW, protocol, { 'X-Cashu': threeProofs });
      t.equal(short.reason, 'PAYGRESS_INSUFFICIENT_AMOUNT');
      // nginx's auth_request answer has no body; the others say why.
      if (protocol !== 'nginx') {
        t.match(
          short.body,
          /2 sat for its 3 proofs.*send 7 sat in at most 3 proofs/,
        );
      }
      const asked = decodePaymentRequest(short.paymentRequest!);
      t.equal(asked.amount!.toNumber(), 7, 'the price and 3 proofs of fees');

      const seven = await mintProofs(mint, 7, { wallet });
      t.equal(seven.length, 3, '4 + 2 + 1');
      const paid = await send(FEW, protocol, {
        'X-Cashu': getEncodedToken({ mint, unit: 'sat', proofs: seven }),
      });
      t.equal(paid.allowed, true, 'paying what the refusal asked buys it');
      t.equal(paid.headers['x-payment-amount'], '5');
    },
  );
}
