/**
 * A payer who spends the token elsewhere while Paygress's swap of it is
 * stuck at the mint has paid Paygress nothing: when Paygress settles the
 * swap it lost track of, inputs spent without its outputs signed mean
 * someone else spent them, and the request is refused. And a late swap of
 * ours, recovered because a new token shares its proofs, pays only for the
 * very token that made it: proofs added to it are not taken as payment,
 * nor refused as spent.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { getEncodedToken } from '@cashu/cashu-ts';
import { computeY } from '../../src/core/token.ts';
import { dearRouteConfig, send, startStack } from '../support/stack.ts';
import {
  decodeToken,
  mintProofs,
  mintToken,
  testWallet,
} from '../support/wallet.ts';

// The mint's swap is held longer than Paygress waits (2 s in the stack).
const STUCK = { kind: 'queue', ms: 2600 } as const;
const stack = await startStack({ price: 100 });
t.teardown(() => stack.close());
const held = () =>
  stack.app.store.balances().reduce((n, b) => n + b.available + b.pending, 0);

for (const protocol of ['forward', 'ext-authz'] as const) {
  t.test(
    `${protocol}: a token spent elsewhere while our swap was stuck is refused`,
    async (t) => {
      const token = await mintToken(stack.mint.url, 100);
      const before = held();
      stack.mint.setFault('swap', STUCK);
      const paying = send(stack, protocol, { 'X-Cashu': token });
      await sleep(300);
      stack.mint.setFault('swap', undefined);
      const payer = await testWallet(stack.mint.url);
      const back = await payer.receive(token);
      t.equal(
        back.reduce((n, p) => n + p.amount.toNumber(), 0),
        100,
        'the payer took the money back',
      );

      const out = await paying;
      t.equal(out.allowed, false, 'so the request is not allowed');
      t.equal(out.reason, 'PAYGRESS_TOKEN_REPLAYED');
      t.equal(held(), before, 'and nothing is held as paid');
      const retry = await send(stack, protocol, { 'X-Cashu': token });
      t.equal(retry.reason, 'PAYGRESS_TOKEN_REPLAYED', 'nor on a retry');
    },
  );
}

t.test('a recovered late swap pays only for its own token', async (t) => {
  // A Paygress of its own: the mint's breaker of the one above has seen
  // its timeouts.
  const s = await startStack({
    price: 100,
    configFile: dearRouteConfig(),
    mint: stack.mint,
  });
  t.teardown(() => s.close());
  const token = await mintToken(stack.mint.url, 100);
  stack.mint.setFault('swap', STUCK);
  const first = await send(s, 'forward', { 'X-Cashu': token });
  t.equal(first.reason, 'PAYGRESS_MINT_UNAVAILABLE', 'given up; it runs late');
  await sleep(1200);
  stack.mint.setFault('swap', undefined);

  // The spent proofs, padded with 1,000 sat of fresh ones, for /dear.
  const spent = (await decodeToken(stack.mint.url, token)).proofs;
  const fresh = await mintProofs(stack.mint.url, 1000);
  const encode = (proofs: typeof fresh) =>
    getEncodedToken({ mint: stack.mint.url, unit: 'sat', proofs });

  const padded = await send(
    s,
    'forward',
    { 'X-Cashu': encode([...spent, ...fresh]) },
    { path: '/dear' },
  );
  t.equal(padded.allowed, false, '100 sat do not buy a 1,000 sat request');
  t.equal(padded.reason, 'PAYGRESS_TOKEN_REPLAYED');

  const own = await send(
    s,
    'forward',
    { 'X-Cashu': encode(fresh) },
    { path: '/dear' },
  );
  t.equal(own.allowed, true, 'the fresh proofs are still good money here');

  const owed = await send(s, 'forward', { 'X-Cashu': token });
  t.equal(owed.allowed, true, 'the late swap is owed to the token that paid');
  t.equal(owed.headers['x-payment-amount'], '100');
});

t.test(
  'a retry while the mint is slow is paid by our own late swap',
  async (t) => {
    const s = await startStack({ price: 100, mint: stack.mint });
    t.teardown(() => s.close());
    const token = await mintToken(stack.mint.url, 100);

    // Both swaps are held past Paygress's wait; the first runs late and
    // spends the token, so the second finds it spent without its outputs.
    stack.mint.setFault('swap', STUCK);
    const first = await send(s, 'forward', { 'X-Cashu': token });
    t.equal(first.reason, 'PAYGRESS_MINT_UNAVAILABLE');
    const retry = await send(s, 'forward', { 'X-Cashu': token });
    stack.mint.setFault('swap', undefined);

    t.equal(retry.allowed, true, 'the late swap of ours pays for the retry');
    t.equal(retry.headers['x-payment-amount'], '100');
    const held = s.app.store.balances().map((b) => [b.available, b.pending]);
    t.same(held, [[100, 0]], 'what the mint took, stored once');
    const again = await send(s, 'forward', { 'X-Cashu': token });
    t.equal(again.reason, 'PAYGRESS_TOKEN_REPLAYED', 'and only once');
  },
);

t.test(
  'a restore that fails does not strand a payment already recovered',
  async (t) => {
    const s = await startStack({ price: 100, mint: stack.mint });
    t.teardown(() => s.close());
    const token = await mintToken(stack.mint.url, 100);
    const ys = (await decodeToken(stack.mint.url, token)).proofs.map((p) =>
      computeY(p.secret),
    );

    // Our swap of the token is given up on, and runs late.
    stack.mint.setFault('swap', STUCK);
    const first = await send(s, 'forward', { 'X-Cashu': token });
    t.equal(first.reason, 'PAYGRESS_MINT_UNAVAILABLE');
    stack.mint.setFault('swap', undefined);
    await sleep(1000);
    // Another swap released as not run shares one of its proofs (one that
    // may still run: a proof spent elsewhere would have left nothing).
    const [late] = s.app.store.released(ys);
    s.app.store.begin({
      ...late!,
      id: 'another',
      ys: [ys[0]!, `02${'7'.repeat(64)}`],
      createdAt: late!.createdAt + 1,
    });
    s.app.store.release('another');
    t.same(
      s.app.store.released(ys).map((r) => r.id),
      [late!.id, 'another'],
    );

    // The retry recovers both released swaps; restoring the first is
    // slow, and by the second the mint fails.
    stack.mint.setFault('restore', { kind: 'delay', ms: 1200 });
    const retrying = send(s, 'forward', { 'X-Cashu': token });
    await sleep(400);
    stack.mint.setFault('restore', { kind: 'status', status: 500 });
    const retry = await retrying;
    stack.mint.setFault('restore', undefined);

    t.equal(retry.allowed, true, 'the recovered payment buys the request');
    t.equal(
      s.app.store.balances().reduce((n, b) => n + b.available, 0),
      100,
    );
  },
);
