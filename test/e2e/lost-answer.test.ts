/**
 * When the mint's answer to a swap never arrives, the swap may or may not
 * have run. Paygress must not guess: it asks the mint (NUT-07) and either
 * recovers the outputs (NUT-09) or releases the proofs, so no paid value
 * is lost and no unpaid request is allowed.
 */
import t from 'tap';
import { mintToken } from '../support/wallet.ts';
import { send, startStack } from '../support/stack.ts';

const stack = await startStack({ price: 100 });
t.teardown(() => stack.close());

const stored = () =>
  stack.app.store.balances().reduce((sum, b) => sum + b.available, 0);

t.test(
  'swap executed but the answer dropped: recovered and allowed',
  async (t) => {
    const token = await mintToken(stack.mint.url, 100);
    const before = stored();

    stack.mint.setFault('swap', { kind: 'swap-then-drop' });
    const out = await send(stack, 'forward', { 'X-Cashu': token });
    stack.mint.setFault('swap', undefined);

    t.equal(
      out.allowed,
      true,
      'the payment happened, so the request is allowed',
    );
    t.equal(stored() - before, 100, 'the restored proofs are in the store');
    t.equal(stack.app.store.unfinished().length, 0);

    const replay = await send(stack, 'forward', { 'X-Cashu': token });
    t.equal(replay.reason, 'PAYGRESS_TOKEN_REPLAYED');
  },
);

t.test('mint answers 500: the proofs are checked and released', async (t) => {
  const token = await mintToken(stack.mint.url, 100);
  const before = stored();

  stack.mint.setFault('swap', { kind: 'status', status: 500 });
  const out = await send(stack, 'forward', { 'X-Cashu': token });
  stack.mint.setFault('swap', undefined);

  t.equal(out.reason, 'PAYGRESS_MINT_ERROR');
  t.equal(out.status, 503);
  t.equal(stored(), before);
  t.equal(stack.app.store.unfinished().length, 0, 'settled as not spent');

  const retry = await send(stack, 'forward', { 'X-Cashu': token });
  t.equal(retry.allowed, true, 'the same token works once the mint does');
});

t.test('mint answers garbage: fails closed, then retry works', async (t) => {
  const token = await mintToken(stack.mint.url, 100);
  stack.mint.setFault('swap', { kind: 'garbage' });
  const out = await send(stack, 'nginx', { 'X-Cashu': token });
  stack.mint.setFault('swap', undefined);
  t.equal(out.reason, 'PAYGRESS_MINT_ERROR');

  const retry = await send(stack, 'nginx', { 'X-Cashu': token });
  t.equal(retry.allowed, true);
});

t.test(
  'mint slower than the deadline: refused as ours, never allowed',
  async (t) => {
    const token = await mintToken(stack.mint.url, 100);
    // Longer than the 2 s mint timeout the test stack configures.
    stack.mint.setFault('swap', { kind: 'hang' });
    const out = await send(stack, 'ext-authz', { 'x-cashu': token });
    t.equal(out.allowed, false);
    t.equal(out.reason, 'PAYGRESS_MINT_UNAVAILABLE');
    t.equal(out.rpcError, 14);

    // The mint still holds the inputs as pending: a retry must not pass.
    const retry = await send(stack, 'forward', { 'X-Cashu': token });
    t.equal(retry.allowed, false);
    t.equal(retry.reason, 'PAYGRESS_TOKEN_PENDING');
    stack.mint.setFault('swap', undefined);
  },
);
