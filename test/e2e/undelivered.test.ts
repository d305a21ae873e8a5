/**
 * A payment whose answer never reaches the payer (the proxy stopped
 * waiting, shutdown cut the call, the process died while the pod was
 * made) is still redeemed: the mint's swap cannot be taken back. The
 * payment then stays owed, and the same token gets its request once on a
 * retry, instead of being refused as a replay; and only a request that
 * costs no more than it paid.
 */
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Wallet } from '@cashu/cashu-ts';
import { ProvisionFailedError } from '../../src/core/errors.ts';
import type { Provisioner } from '../../src/core/ports.ts';
import { LATE_ANSWER_MS } from '../../src/protocols/ext-authz.ts';
import {
  decodeCheckResponse,
  encodeCheckRequest,
} from '../support/envoy-wire.ts';
import {
  FakeKubeApiServer,
  writeKubeConfig,
} from '../support/fake-kube-apiserver.ts';
import { startPaygressProcess } from '../support/paygress-process.ts';
import {
  dearRouteConfig,
  rateRouteConfig,
  send,
  startStack,
  type Stack,
} from '../support/stack.ts';
import { mintToken, relabelled } from '../support/wallet.ts';
import { tempDir } from '../support/temp-dir.ts';

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

/** `paygress_payments_owed` as /metrics reads, once it is `want`. */
async function owedReaches(want: number): Promise<number> {
  let owed = NaN;
  for (let waited = 0; waited < 5000; waited += 50) {
    const text = await (await fetch(`${stack.base}/metrics`)).text();
    owed = Number(/^paygress_payments_owed (\d+)$/m.exec(text)?.[1]);
    if (owed === want) break;
    await sleep(50);
  }
  return owed;
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

/** A Check paying with `token` whose caller waits `deadlineMs`. */
function checkWithin(
  stack: Stack,
  token: string,
  deadlineMs: number,
): Promise<{ code: number } | { bytes: Buffer }> {
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
      { deadline: Date.now() + deadlineMs },
      (err, bytes) => resolve(err ? { code: err.code } : { bytes: bytes! }),
    ),
  );
}

async function checkGivingUp(
  stack: Stack,
  token: string,
  deadlineMs = 200,
): Promise<unknown> {
  const answer = await checkWithin(stack, token, deadlineMs);
  return 'code' in answer ? answer.code : 'answered';
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
      t.equal(await owedReaches(1), 1, 'the metrics count it owed');

      const retry = await send(stack, protocol, { 'X-Cashu': token });
      t.equal(retry.allowed, true, 'the same token gets what it paid for');
      t.equal(stored() - before, 100, 'and is not redeemed twice');
      t.equal(await owedReaches(0), 0, 'and owed no more');

      const again = await send(stack, protocol, { 'X-Cashu': token });
      t.equal(again.reason, 'PAYGRESS_TOKEN_REPLAYED', 'but only once');
    },
  );
}

t.test(
  'ext-authz: a paid answer ready just before the deadline stays owed, since Envoy may drop it',
  async (t) => {
    const token = await mintToken(stack.mint.url, 100);
    const before = stored();
    // The decision ends some 50 ms before the caller's deadline: Envoy,
    // whose timer started before Paygress's, may already have given up.
    stack.mint.setFault('swap', { kind: 'delay', ms: 520 });
    const first = await checkGivingUp(stack, token, 600);
    // A loaded machine answers after the deadline instead (the caller gave
    // up, as above): the retry waits for the redemption to be done.
    await storedReaches(before + 100);
    stack.mint.setFault('swap', undefined);
    t.ok(LATE_ANSWER_MS > 80);
    t.comment(`the first answer: ${String(first)}`);

    const retry = await send(stack, 'ext-authz', { 'X-Cashu': token });
    t.equal(retry.allowed, true, 'the retry gets the request paid for');
    const again = await send(stack, 'ext-authz', { 'X-Cashu': token });
    t.equal(again.reason, 'PAYGRESS_TOKEN_REPLAYED', 'once');
  },
);

t.test(
  'ext-authz: a refund ready just before the deadline is not kept owed as well',
  async (t) => {
    // The pod fails 70 ms before the caller's deadline: the refund goes
    // out. Kept owed too, the payer would hold the refund and the payment
    // would buy its request again. (A loaded machine may answer after the
    // deadline instead, which is the case tested above: so a few tries.)
    const DEADLINE_MS = 1500;
    let failing = true;
    let deadline = 0;
    const pods: Provisioner = {
      ...slowProvisioner(0),
      ensure: async (grantId) => {
        await sleep(deadline - 70 - Date.now());
        if (failing) throw new ProvisionFailedError('no pods now');
        return { podName: `pod-${grantId}` };
      },
    };
    const refunding = await startStack({ price: 100, provisioner: pods });
    t.teardown(() => refunding.close());
    let token = '';
    let refund: string | undefined;
    for (let attempt = 0; attempt < 5 && refund === undefined; attempt++) {
      token = await mintToken(refunding.mint.url, 100);
      deadline = Date.now() + DEADLINE_MS;
      const answer = await checkWithin(refunding, token, DEADLINE_MS);
      refund =
        'bytes' in answer
          ? decodeCheckResponse(answer.bytes).deniedResponse?.headers.find(
              (h) => h.key === 'x-cashu',
            )?.value
          : undefined;
    }
    failing = false;
    t.match(refund, /^cashuB/, 'the refund arrived');
    const wallet = new Wallet(refunding.mint.url, { unit: 'sat' });
    await wallet.loadMint();
    await wallet.receive(refund!);
    const retry = await send(refunding, 'ext-authz', { 'X-Cashu': token });
    t.equal(
      retry.reason,
      'PAYGRESS_TOKEN_REPLAYED',
      'the refunded payment buys nothing more',
    );
  },
);

t.test(
  'ext-authz: a top-up kept owed at the deadline, retried with the grant it returned, is not applied twice',
  async (t) => {
    const DEADLINE_MS = 1500;
    let deadline = 0;
    const pods: Provisioner = {
      ...slowProvisioner(0),
      // The top-up's pod change ends 70 ms before the caller's deadline.
      extend: async () => {
        if (deadline > 0) await sleep(deadline - 70 - Date.now());
      },
    };
    const file = rateRouteConfig(86400);
    let offset = 0;
    const clock = { now: () => Date.now() + offset };
    const s = await startStack({ configFile: file, provisioner: pods, clock });
    t.teardown(() => s.close());
    const compute = { path: '/compute' };
    const expiry = (credential: string) =>
      JSON.parse(Buffer.from(credential.split('.')[1]!, 'base64url').toString())
        .e as number;
    const bought = await send(
      s,
      'forward',
      { 'X-Cashu': await mintToken(s.mint.url, 10) },
      compute,
    );
    const g0 = bought.headers['x-paygress-grant']!;

    /** A 60 sat top-up of `grant` answered at the deadline: kept owed. */
    const topUpAtDeadline = async (grant: string) => {
      for (let attempt = 0; attempt < 5; attempt++) {
        const token = await mintToken(s.mint.url, 60);
        const request = encodeCheckRequest({
          http: {
            method: 'GET',
            path: '/compute',
            host: 'app.example',
            scheme: 'https',
            headers: [
              ['authorization', `Bearer ${grant}`],
              ['x-cashu', token],
            ],
          },
        });
        deadline = Date.now() + DEADLINE_MS;
        const topped = await new Promise<string | undefined>((resolve) =>
          s.grpc.makeUnaryRequest(
            '/envoy.service.auth.v3.Authorization/Check',
            (b: Buffer) => b,
            (b: Buffer) => b,
            request,
            { deadline },
            (err, bytes) =>
              resolve(
                err
                  ? undefined
                  : decodeCheckResponse(
                      bytes!,
                    ).okResponse?.responseHeadersToAdd.find(
                      (h) => h.key === 'x-paygress-grant',
                    )?.value,
              ),
          ),
        );
        deadline = 0;
        if (topped !== undefined) return { token, topped };
      }
      throw new Error('no top-up answered before its deadline');
    };

    const first = await topUpAtDeadline(g0);
    t.equal(expiry(first.topped) - expiry(g0), 360_000, 'six minutes more');
    // It was kept owed: the payer, told nothing went wrong, may still send
    // the token again with the grant that answer returned.
    const retry = await send(
      s,
      'forward',
      { 'X-Cashu': first.token, Authorization: `Bearer ${first.topped}` },
      compute,
    );
    t.equal(retry.allowed, true, 'the retry gets its request');
    t.equal(
      expiry(retry.headers['x-paygress-grant']!),
      expiry(first.topped),
      'and the same grant, not six more minutes',
    );

    // Retried only once that time is used up, it buys nothing more, and
    // is not handed back either.
    const second = await topUpAtDeadline(first.topped);
    offset += expiry(second.topped) - clock.now() + 1000;
    const late = await send(
      s,
      'forward',
      { 'X-Cashu': second.token, Authorization: `Bearer ${second.topped}` },
      compute,
    );
    t.equal(late.reason, 'PAYGRESS_TOKEN_REPLAYED', 'its time was used');
    t.notOk(late.headers['x-cashu']?.startsWith('cashuB'), 'no refund');
  },
);

t.test(
  'ext-authz: an allow kept owed at the deadline is owed once, and never handed back',
  async (t) => {
    // The pod is ready 70 ms before the caller's deadline: the allow goes
    // out and the payment is kept owed, in case Envoy dropped it.
    const DEADLINE_MS = 1500;
    let deadline = 0;
    let failing = false;
    const pods: Provisioner = {
      ...slowProvisioner(0),
      ensure: async (grantId) => {
        if (deadline > 0) await sleep(deadline - 70 - Date.now());
        if (failing) throw new ProvisionFailedError('no pods now');
        return { podName: `pod-${grantId}` };
      },
    };
    const s = await startStack({ price: 100, provisioner: pods });
    t.teardown(() => s.close());
    const kept = () =>
      s.app.store.balances().reduce((sum, b) => sum + b.available, 0);
    /** Checks with `token` until one is allowed before its deadline. */
    const allowedAtDeadline = async (token: string) => {
      for (let attempt = 0; attempt < 5; attempt++) {
        deadline = Date.now() + DEADLINE_MS;
        const answer = await checkWithin(s, token, DEADLINE_MS);
        deadline = 0;
        if ('bytes' in answer && decodeCheckResponse(answer.bytes).okResponse) {
          return true;
        }
      }
      return false;
    };

    const token = await mintToken(s.mint.url, 100);
    t.ok(await allowedAtDeadline(token), 'the payer got its request');
    t.equal(kept(), 100);

    // The same proofs, each relabelled as 1 sat, are refused as too
    // little; being owed, they are looked up, but an answer that may have
    // arrived is not handed back.
    const asOne = await relabelled(s.mint.url, token, () => 1);
    const small = await send(s, 'forward', { 'X-Cashu': asOne });
    t.equal(small.reason, 'PAYGRESS_INSUFFICIENT_AMOUNT');
    t.notOk(small.headers['x-cashu']?.startsWith('cashuB'), 'no refund');
    t.equal(kept(), 100);

    // Its retry while no pod can be made: the payer may hold the request
    // already, so neither the value nor a credit goes back.
    failing = true;
    const failed = await send(s, 'forward', { 'X-Cashu': token });
    failing = false;
    t.equal(failed.reason, 'PAYGRESS_PROVISION_FAILED');
    t.notOk(failed.headers['x-cashu']?.startsWith('cashuB'), 'no refund');
    t.notOk(failed.headers['x-paygress-grant'], 'no credit');
    t.match(failed.body, /stays owed, send the same token again later/);
    t.equal(kept(), 100, 'the payment is kept');

    // Still owed: its next retry, again answered at the deadline, gets it,
    // but is not kept owed a second time.
    t.ok(await allowedAtDeadline(token), 'the retry gets the request');
    const third = await send(s, 'forward', { 'X-Cashu': token });
    t.equal(third.reason, 'PAYGRESS_TOKEN_REPLAYED', 'twice at most');
    t.equal(kept(), 100);
  },
);

t.test(
  'an owed payment whose price rose since: handed back, or kept owed when locked',
  async (t) => {
    const mint = stack.mint;
    /** A payment of 100 sat whose answer was lost, on a new data dir. */
    const owedAt = async (env: Record<string, string> = {}) => {
      const dataDir = tempDir('paygress-reprice-');
      const first = await startStack({ mint, price: 100, dataDir, env });
      const token = await mintToken(mint.url, 100);
      mint.setFault('swap', { kind: 'delay', ms: 800 });
      try {
        await forwardGivingUp(first, token);
        for (let i = 0; i < 100 && first.app.store.owedCount() === 0; i++) {
          await sleep(50);
        }
      } finally {
        mint.setFault('swap', undefined);
      }
      t.equal(first.app.store.owedCount(), 1, 'owed');
      await first.close();
      return { dataDir, token };
    };

    // The operator raised the price to 150 meanwhile.
    const { dataDir, token } = await owedAt();
    const dearer = await startStack({ mint, price: 150, dataDir });
    t.teardown(() => dearer.close());
    const retry = await send(dearer, 'forward', { 'X-Cashu': token });
    t.equal(retry.reason, 'PAYGRESS_INSUFFICIENT_AMOUNT');
    t.match(retry.body, /paid 100 sat earlier and its answer was lost/);
    const refund = retry.headers['x-cashu']!;
    t.match(refund, /^cashuB/, 'the payment comes back');
    const wallet = new Wallet(mint.url, { unit: 'sat' });
    await wallet.loadMint();
    const back = await wallet.receive(refund);
    t.equal(
      back.reduce((sum, p) => sum + p.amount.toNumber(), 0),
      100,
      'all of it',
    );
    t.equal(dearer.app.store.owedCount(), 0);
    // Sent again, it is a spent token worth too little, as any other.
    const again = await send(dearer, 'forward', { 'X-Cashu': token });
    t.equal(again.reason, 'PAYGRESS_INSUFFICIENT_AMOUNT');
    t.notOk(again.headers['x-cashu']?.startsWith('cashuB'), 'only once');

    // Locked to the operator, nothing can be handed back: it stays owed,
    // and the old price back, the retry gets its request.
    const key = '02' + 'ab'.repeat(32);
    const locked = await owedAt({ PAYGRESS_OPERATOR_PUBKEY: key });
    const env = { PAYGRESS_OPERATOR_PUBKEY: key };
    const dear = await startStack({
      mint,
      price: 150,
      dataDir: locked.dataDir,
      env,
    });
    const kept = await send(dear, 'nginx', { 'X-Cashu': locked.token });
    t.equal(kept.reason, 'PAYGRESS_INSUFFICIENT_AMOUNT');
    t.notOk(kept.headers['x-cashu']?.startsWith('cashuB'), 'no refund');
    t.equal(dear.app.store.owedCount(), 1, 'still owed');
    await dear.close();
    const back100 = await startStack({
      mint,
      price: 100,
      dataDir: locked.dataDir,
      env,
    });
    t.teardown(() => back100.close());
    const served = await send(back100, 'forward', { 'X-Cashu': locked.token });
    t.equal(served.allowed, true, 'the old price back, it is honoured');
  },
);

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
    release: async () => {},
    podName: (grantId) => `pod-${grantId}`,
  };
}

// The answer is ready within the second grace period (connections were
// cut, the store still open), or only after both, the store closed.
for (const [graceMs, provisionMs, when] of [
  [800, 1200, 'within the second grace period'],
  [300, 1500, 'after the store closed'],
] as const) {
  for (const protocol of ['forward', 'ext-authz'] as const) {
    t.test(
      `${protocol}: shutdown cuts a paid request, its answer ready ${when}; owed after the restart`,
      async (t) => {
        const dataDir = tempDir('paygress-undelivered-');
        const first = await startStack({
          mint: stack.mint,
          dataDir,
          env: { PAYGRESS_SHUTDOWN_GRACE_MS: String(graceMs) },
          provisioner: slowProvisioner(provisionMs),
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
          'it was never recorded as delivered: the same token gets what it paid for',
        );
      },
    );
  }
}

t.test('an owed payment buys no dearer request', async (t) => {
  const s = await startStack({
    mint: stack.mint,
    configFile: dearRouteConfig(),
  });
  t.teardown(() => s.close());
  const token = await mintToken(stack.mint.url, 100);

  stack.mint.setFault('swap', { kind: 'delay', ms: 800 });
  t.equal(await forwardGivingUp(s, token), 'TimeoutError');
  const paid = () => s.app.store.balances().some((b) => b.available === 100);
  for (let i = 0; i < 500 && !paid(); i++) await sleep(20);
  stack.mint.setFault('swap', undefined);

  // A retry names its own amounts; only the secrets tie it to the payment.
  // Worth 100 sat, this one claims 1,000 for a 1,000 sat request.
  const inflated = await relabelled(stack.mint.url, token, (n) => n * 10);
  const dear = await send(
    s,
    'forward',
    { 'X-Cashu': inflated },
    {
      path: '/dear',
    },
  );
  t.equal(dear.allowed, false, 'not for a dearer request');
  t.equal(dear.reason, 'PAYGRESS_TOKEN_REPLAYED');

  const retry = await send(s, 'forward', { 'X-Cashu': token });
  t.equal(retry.allowed, true, 'still owed for what it paid for');
});

t.test('killed while the pod was made: owed after the restart', async (t) => {
  const dir = tempDir('paygress-undelivered-kill-');
  const kube = await FakeKubeApiServer.start();
  t.teardown(() => kube.close());
  const config = join(dir, 'paygress.yaml');
  writeFileSync(
    config,
    'provisioning:\n  enabled: true\n  namespace: paid\n  template:\n    image: registry.example/workspace:1\n',
  );
  const paygress = await startPaygressProcess({
    mintUrl: stack.mint.url,
    dataDir: join(dir, 'data'),
    env: {
      PAYGRESS_CONFIG: config,
      KUBECONFIG: writeKubeConfig(kube, join(dir, 'kubeconfig'), 'paid'),
    },
  });
  t.teardown(() => paygress.kill());
  const token = await mintToken(stack.mint.url, 100);
  const headers = {
    'X-Cashu': token,
    'X-Forwarded-Method': 'GET',
    'X-Forwarded-Proto': 'https',
    'X-Forwarded-Host': 'app.example',
    'X-Forwarded-Uri': '/premium',
  };

  kube.delay(5000);
  const first = fetch(`${paygress.base}/auth/forward`, { headers }).then(
    (res) => res.status,
    () => 'cut',
  );
  const making = () => kube.requests.some((r) => r.method === 'POST');
  for (let i = 0; i < 250 && !making(); i++) await sleep(20);
  t.ok(making(), 'paid, and the pod is being made');
  await paygress.kill();
  t.equal(await first, 'cut');

  kube.delay(0);
  const made = kube.pods('paid').map((p) => p.metadata.name);
  t.equal(made.length, 1, 'the create took effect');
  await paygress.start();
  const retry = await fetch(`${paygress.base}/auth/forward`, { headers });
  t.equal(retry.status, 200, 'the token that paid gets its request');
  t.equal(
    retry.headers.get('x-provisioned-pod'),
    made[0],
    'with the pod made before the restart',
  );
  t.equal(kube.pods('paid').length, 1, 'and no second pod');
  const again = await fetch(`${paygress.base}/auth/forward`, { headers });
  t.equal(again.headers.get('x-paygress-reason'), 'PAYGRESS_TOKEN_REPLAYED');
});
