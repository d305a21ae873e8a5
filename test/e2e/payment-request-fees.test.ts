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
