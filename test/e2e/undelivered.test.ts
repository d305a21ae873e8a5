/**
 * A payment whose answer never reaches the payer (the proxy stopped
 * waiting, or shutdown cut the call) is still redeemed: the mint's swap
 * cannot be taken back. The payment then stays owed, and the same token
 * gets its request once on a retry, instead of being refused as a replay.
 */
import t from 'tap';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Provisioner } from '../../src/core/ports.ts';
import { encodeCheckRequest } from '../support/envoy-wire.ts';
import { send, startStack, type Stack } from '../support/stack.ts';
import { mintToken } from '../support/wallet.ts';

const stack = await startStack({ price: 100 });
t.teardown(() => stack.close());

const stored = () =>
  stack.app.store.balances().reduce((sum, b) => sum + b.available, 0);

/** Waits until the store holds `amount` sat, the redemption done. */
async function storedReaches(amount: number): Promise<void> {
  for (let waited = 0; stored() < amount && waited < 10_000; waited += 20) {
    await sleep(20);
  }
}

function forwardGivingUp(stack: Stack, token: string): Promise<unknown> {
  return fetch(`${stack.base}/auth/forward`, {
    headers: {
      'X-Cashu': token,
      'X-Forwarded-Method': 'GET',
      'X-Forwarded-Proto': 'https',
      'X-Forwarded-Host': 'app.example',
      'X-Forwarded-Uri': '/premium',
    },
    signal: AbortSignal.timeout(200),
  }).then(
    () => 'answered',
    (err: Error) => err.name,
  );
}

function checkGivingUp(stack: Stack, token: string): Promise<unknown> {
  const request = encodeCheckRequest({
    http: {
      method: 'GET',
      path: '/premium',
      host: 'app.example',
      scheme: 'https',
      headers: [['x-cashu', token]],
    },
  });
  return new Promise((resolve) =>
    stack.grpc.makeUnaryRequest(
      '/envoy.service.auth.v3.Authorization/Check',
      (b: Buffer) => b,
      (b: Buffer) => b,
      request,
      { deadline: Date.now() + 200 },
      (err) => resolve(err ? err.code : 'answered'),
    ),
  );
}

for (const [protocol, giveUp, expected] of [
  ['forward', forwardGivingUp, 'TimeoutError'],
  ['ext-authz', checkGivingUp, 4 /* DEADLINE_EXCEEDED */],
] as const) {
  t.test(
    `${protocol}: the caller gave up; the retry gets it, once`,
    async (t) => {
      const token = await mintToken(stack.mint.url, 100);
      const before = stored();

      stack.mint.setFault('swap', { kind: 'delay', ms: 800 });
      t.equal(
        await giveUp(stack, token),
        expected,
        'the caller stopped waiting',
      );
      await storedReaches(before + 100);
      stack.mint.setFault('swap', undefined);
      t.equal(stored() - before, 100, 'the payment was redeemed all the same');

      const retry = await send(stack, protocol, { 'X-Cashu': token });
      t.equal(retry.allowed, true, 'the same token gets what it paid for');
      t.equal(stored() - before, 100, 'and is not redeemed twice');

      const again = await send(stack, protocol, { 'X-Cashu': token });
      t.equal(again.reason, 'PAYGRESS_TOKEN_REPLAYED', 'but only once');
    },
  );
}

t.test('an answer that was delivered is not owed again', async (t) => {
  const token = await mintToken(stack.mint.url, 100);
  stack.mint.setFault('swap', { kind: 'delay', ms: 300 });
  const paid = await send(stack, 'forward', { 'X-Cashu': token });
  stack.mint.setFault('swap', undefined);
  t.equal(paid.allowed, true);

  const replay = await send(stack, 'ext-authz', { 'X-Cashu': token });
  t.equal(replay.reason, 'PAYGRESS_TOKEN_REPLAYED');
});

/**
 * A provisioner that takes `ms` to create each pod: the redemption is done
 * and stored long before the answer is ready.
 */
function slowProvisioner(ms: number): Provisioner {
  return {
    ensure: async (grantId) => {
      await sleep(ms);
      return { podName: `pod-${grantId}` };
    },
    extend: async () => {},
    reap: async () => 0,
    podName: (grantId) => `pod-${grantId}`,
  };
}

for (const protocol of ['forward', 'ext-authz'] as const) {
  t.test(
    `${protocol}: shutdown cuts a paid request; it is owed after the restart`,
    async (t) => {
      const dataDir = mkdtempSync(join(tmpdir(), 'paygress-undelivered-'));
      // Connections are cut 800 ms after close; the answer is ready about
      // 1,200 ms after the request, within the second grace period.
      const first = await startStack({
        mint: stack.mint,
        dataDir,
        env: { PAYGRESS_SHUTDOWN_GRACE_MS: '800' },
        provisioner: slowProvisioner(1200),
      });
      const token = await mintToken(stack.mint.url, 100);

      const cut = send(first, protocol, { 'X-Cashu': token }).catch(
        () => undefined,
      );
      await sleep(100);
      await first.close();
      t.not((await cut)?.allowed, true, 'the cut-off request got no allow');

      const second = await startStack({ mint: stack.mint, dataDir });
      t.teardown(() => second.close());
      t.same(
        second.app.store.balances().map((b) => b.available),
        [100],
        'the payment was stored',
      );
      const retry = await send(second, protocol, { 'X-Cashu': token });
      t.equal(
        retry.allowed,
        true,
        'its answer was recorded as undelivered before the store closed: the same token gets what it paid for',
      );
    },
  );
}
