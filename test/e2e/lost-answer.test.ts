/**
 * When the mint's answer to a swap never arrives, the swap may or may not
 * have run. Paygress must not guess: it asks the mint (NUT-07) and either
 * recovers the outputs (NUT-09) or releases the proofs, so no paid value
 * is lost and no unpaid request is allowed.
 */
import t from 'tap';
import { startDevMint } from '../../src/devmint/index.ts';
import { mintToken } from '../support/wallet.ts';
import { send, startStack } from '../support/stack.ts';
import { tempDir } from '../support/temp-dir.ts';

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

t.test(
  'a swap still queued at the mint when released is recovered',
  async (t) => {
    const token = await mintToken(stack.mint.url, 100);
    const before = stored();

    // The mint sits on the swap past the 2 s deadline, inputs still UNSPENT,
    // so Paygress releases the redemption; then the mint runs it anyway.
    stack.mint.setFault('swap', { kind: 'queue', ms: 2600 });
    const out = await send(stack, 'forward', { 'X-Cashu': token });
    t.equal(out.reason, 'PAYGRESS_MINT_UNAVAILABLE');
    await new Promise((r) => setTimeout(r, 1200));
    stack.mint.setFault('swap', undefined);

    const retry = await send(stack, 'forward', { 'X-Cashu': token });
    t.equal(retry.allowed, true, 'the payer who paid gets the request');
    t.equal(retry.headers['x-payment-amount'], '100');
    t.equal(stored() - before, 100, 'the late swap outputs were recovered');

    const again = await send(stack, 'forward', { 'X-Cashu': token });
    t.equal(again.reason, 'PAYGRESS_TOKEN_REPLAYED', 'once');
  },
);

t.test(
  'a late swap is recovered in the background, owed to its payer',
  async (t) => {
    const first = await startStack({ price: 100 });
    const mint = first.mint;
    const token = await mintToken(mint.url, 100);
    mint.setFault('swap', { kind: 'queue', ms: 2600 });
    const out = await send(first, 'forward', { 'X-Cashu': token });
    t.equal(out.reason, 'PAYGRESS_MINT_UNAVAILABLE');
    await new Promise((r) => setTimeout(r, 1200));
    mint.setFault('swap', undefined);

    // A restart settles at once (a running Paygress does it every 30 s).
    await first.app.close();
    const again = await startStack({ mint, dataDir: first.dataDir });
    t.teardown(async () => {
      await again.close();
      await first.close();
    });
    const storedNow = () =>
      again.app.store.balances().reduce((sum, b) => sum + b.available, 0);
    t.equal(storedNow(), 100, 'recovered before the payer came back');

    const retry = await send(again, 'nginx', { 'X-Cashu': token });
    t.equal(retry.allowed, true, 'the payer who paid gets the request');
    t.equal(storedNow(), 100, 'without a second redemption');
    const replay = await send(again, 'forward', { 'X-Cashu': token });
    t.equal(replay.reason, 'PAYGRESS_TOKEN_REPLAYED', 'once');
  },
);

t.test(
  'a lost answer is still recovered after the mint rotated its keyset',
  async (t) => {
    const mint = await startDevMint();
    const dataDir = tempDir('paygress-rotated-');
    const first = await startStack({ price: 100, mint, dataDir });
    t.teardown(() => mint.close());
    const token = await mintToken(mint.url, 100);

    // The swap runs and its answer is lost; the mint cannot be asked
    // about it, so it stays pending, signed by the keyset of the day.
    mint.setFault('swap', { kind: 'swap-then-drop' });
    mint.setFault('checkstate', { kind: 'status', status: 500 });
    const cut = await send(first, 'forward', { 'X-Cashu': token });
    t.equal(cut.allowed, false);
    await first.close();
    mint.setFault('swap', undefined);
    mint.setFault('checkstate', undefined);

    // Rotated: its outputs' keyset is inactive when it is settled.
    mint.rotateKeyset();
    const second = await startStack({ price: 100, mint, dataDir });
    t.teardown(() => second.close());
    t.same(
      second.app.store.balances().map((b) => [b.available, b.pending]),
      [[100, 0]],
      'settled at start-up: restored with the retired keyset',
    );
    const retry = await send(second, 'forward', { 'X-Cashu': token });
    t.equal(retry.allowed, true, 'and owed to the token that paid');
  },
);
