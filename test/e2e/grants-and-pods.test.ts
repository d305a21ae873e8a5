/**
 * What a payment buys beyond one request: a signed grant for a rate route,
 * top-ups, grants checked by any replica holding the key, trusted and
 * untrusted ingress prices, and a pod per grant — with the money handed
 * back when the pod cannot be made.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import type { Test } from 'tap';
import { Wallet, decodePaymentRequest } from '@cashu/cashu-ts';
import { startDevMint } from '../../src/devmint/index.ts';
import { grantIdFor } from '../../src/core/grants.ts';
import { KubernetesProvisioner } from '../../src/k8s/provisioner.ts';
import {
  FakeKubeApiServer,
  kubeConfigFor,
  writeKubeConfig,
} from '../support/fake-kube-apiserver.ts';
import { mintToken, relabelled } from '../support/wallet.ts';
import {
  PROTOCOLS,
  keptLog,
  send,
  startStack,
  type Stack,
} from '../support/stack.ts';
import { asIssuedBeforeHostCookies } from '../support/legacy-grant.ts';
import { tempDir } from '../support/temp-dir.ts';

const dir = tempDir('paygress-grants-');
const configFile = join(dir, 'paygress.yaml');
writeFileSync(
  configFile,
  `
pricing:
  default: { amount: 100, unit: sat }
  rules:
    - name: compute
      match: { path: /compute, pathMatch: prefix }
      rate: { amount: 10, unit: sat, perSeconds: 60, minSeconds: 60, maxSeconds: 3600 }
    - name: notebook
      match: { path: /notebook, pathMatch: prefix }
      rate: { amount: 10, unit: sat, perSeconds: 60, minSeconds: 60, maxSeconds: 3600 }
grants:
  key: a-test-grant-key-that-is-long-enough-0123456789
provisioning:
  namespace: paid
  template:
    image: registry.example/workspace:1
    labels: { app: workspace }
`,
);

class FakeClock {
  ms = Date.now();
  now() {
    return this.ms;
  }
}

const mint = await startDevMint();
t.teardown(() => mint.close());
const kube = await FakeKubeApiServer.start();
t.teardown(() => kube.close());
process.env.KUBECONFIG = writeKubeConfig(kube, join(dir, 'kubeconfig'), 'paid');

async function stack(
  env: Record<string, string> = {},
  clock?: FakeClock,
): Promise<Stack> {
  const s = await startStack({
    mint,
    configFile,
    env,
    ...(clock ? { clock } : {}),
  });
  t.teardown(() => s.close());
  return s;
}

const compute = { path: '/compute/job' };

/** A Paygress provisioning pods, and a grant on /compute bought from it. */
async function paidPod(
  sats: number,
  clock?: FakeClock,
  env: Record<string, string> = {},
) {
  const s = await stack({ ENABLE_POD_PROVISIONING: 'true', ...env }, clock);
  const first = await send(
    s,
    'forward',
    { 'X-Cashu': await mintToken(mint.url, sats) },
    compute,
  );
  return {
    s,
    grant: first.headers['x-paygress-grant']!,
    pod: first.headers['x-provisioned-pod']!,
  };
}

/** A Paygress provisioning pods, its log lines collected. */
async function loggedStack(dataDir?: string) {
  const { logger, lines } = keptLog();
  const s = await startStack({
    mint,
    configFile,
    ...(dataDir ? { dataDir } : {}),
    env: { ENABLE_POD_PROVISIONING: 'true' },
    logger,
  });
  t.teardown(() => s.close());
  /** How many paid answers it could not deliver. */
  const lost = () =>
    lines.filter((l) => String(l.msg).startsWith('paid answer not delivered'))
      .length;
  return { s, lines, lost };
}

/** The paid expiry on a pod's annotation. */
function podExpiry(pod: string): string | undefined {
  return kube.pods('paid').find((p) => p.metadata.name === pod)?.metadata
    .annotations?.['paygress.dev/expires-at'];
}

/** The expiry a grant credential carries (its payload's `e`), in ms. */
function expiryOf(credential: string): number {
  const payload = credential.split('.')[1]!;
  return (
    JSON.parse(Buffer.from(payload, 'base64url').toString()) as {
      e: number;
    }
  ).e;
}

/** The grant id a credential carries (its payload's `i`). */
function idOf(credential: string): string {
  const payload = credential.split('.')[1]!;
  return (
    JSON.parse(Buffer.from(payload, 'base64url').toString()) as { i: string }
  ).i;
}

/** Pays `sats` on /compute for a new grant: its credential and pod. */
async function buyGrant(s: Stack, sats = 10) {
  const out = await send(
    s,
    'forward',
    { 'X-Cashu': await mintToken(mint.url, sats) },
    compute,
  );
  return {
    out,
    grant: out.headers['x-paygress-grant']!,
    pod: out.headers['x-provisioned-pod']!,
  };
}

/** Sends `token` on /compute with `grant`'s credential. */
function topUp_(s: Stack, token: string, grant: string) {
  return send(
    s,
    'forward',
    { 'X-Cashu': token, Authorization: `Bearer ${grant}` },
    compute,
  );
}

/**
 * Pays `token` on /compute (a top-up of `grant`, given one) and gives up
 * before the answer comes, the Kubernetes calls of `held` (the patch of a
 * top-up, the create of a new grant) held 400 ms; resolves once Paygress
 * has logged, in `lines`, that the answer was lost.
 */
async function loseAnswer(
  t: Test,
  s: Stack,
  lines: readonly Record<string, unknown>[],
  token: string,
  grant?: string,
  held = grant ? 'PATCH' : 'POST',
): Promise<void> {
  const lost = () =>
    lines.filter((l) => String(l.msg).startsWith('paid answer not delivered'))
      .length;
  const before = lost();
  kube.delay(400, held);
  await fetch(`${s.base}/auth/forward`, {
    headers: {
      'X-Cashu': token,
      ...(grant ? { Authorization: `Bearer ${grant}` } : {}),
      'X-Forwarded-Method': 'GET',
      'X-Forwarded-Proto': 'https',
      'X-Forwarded-Host': 'app.example',
      'X-Forwarded-Uri': compute.path,
    },
    signal: AbortSignal.timeout(150),
  }).catch(() => undefined);
  for (let i = 0; lost() === before && i < 500; i++) {
    await new Promise((r) => setTimeout(r, 20));
  }
  kube.delay(0);
  t.equal(lost(), before + 1, 'the answer was lost');
}

/** Pays `sats` more on /compute with `grant`: a top-up. */
async function topUp(s: Stack, grant: string, sats: number) {
  return send(
    s,
    'forward',
    {
      Authorization: `Bearer ${grant}`,
      'X-Cashu': await mintToken(mint.url, sats),
    },
    compute,
  );
}

t.test(
  'a rate payment returns a grant that covers later requests',
  async (t) => {
    const clock = new FakeClock();
    const s = await stack({}, clock);

    const asked = await send(s, 'forward', {}, compute);
    t.equal(asked.reason, 'PAYGRESS_PAYMENT_REQUIRED');
    t.equal(
      decodePaymentRequest(asked.paymentRequest!).amount?.toNumber(),
      10,
      'asks for the minimum',
    );
    t.match(
      JSON.parse(asked.body!).message,
      /10 sat buys 60 s; a grant holds at most 3600 s, which 600 sat buys: more buys no more time/,
      'and says what more buys, and where it stops',
    );

    const paid = await send(
      s,
      'forward',
      { 'X-Cashu': await mintToken(mint.url, 20) },
      compute,
    );
    t.equal(paid.allowed, true);
    const grant = paid.headers['x-paygress-grant']!;
    t.match(grant, /^pgr1\./);
    t.match(
      paid.headers['set-cookie'],
      /^__Host-paygress_grant=pgr1\.[^;]+; Path=\/; Max-Age=120; HttpOnly; SameSite=Lax; Secure$/,
    );
    const user = paid.headers['x-user-id'];

    for (const protocol of ['forward', 'nginx', 'ext-authz'] as const) {
      const again = await send(
        s,
        protocol,
        { Authorization: `Bearer ${grant}` },
        compute,
      );
      t.equal(again.allowed, true, `${protocol}: grant accepted`);
      t.equal(again.headers['x-user-id'], user);
      t.equal(
        again.headers['x-payment-amount'],
        '0',
        'nothing paid for this one',
      );
    }
    const cookie = await send(
      s,
      'forward',
      { Cookie: `a=b; __Host-paygress_grant=${grant}` },
      compute,
    );
    t.equal(cookie.allowed, true, 'the cookie carries the grant too');

    const otherRoute = await send(s, 'forward', {
      Authorization: `Bearer ${grant}`,
    });
    t.equal(otherRoute.reason, 'PAYGRESS_GRANT_SCOPE');

    const tampered =
      grant.slice(0, -3) + (grant.endsWith('AAA') ? 'BBB' : 'AAA');
    const bad = await send(
      s,
      'forward',
      { Authorization: `Bearer ${tampered}` },
      compute,
    );
    t.equal(bad.reason, 'PAYGRESS_GRANT_INVALID');

    clock.ms += 121_000;
    const late = await send(
      s,
      'forward',
      { Authorization: `Bearer ${grant}` },
      compute,
    );
    t.equal(late.reason, 'PAYGRESS_GRANT_EXPIRED');
  },
);

t.test('a top-up extends the grant and keeps its id', async (t) => {
  const clock = new FakeClock();
  const s = await stack({}, clock);
  const first = await send(
    s,
    'forward',
    { 'X-Cashu': await mintToken(mint.url, 10) },
    compute,
  );
  const grant = first.headers['x-paygress-grant']!;

  const topUp = await send(
    s,
    'forward',
    {
      Authorization: `Bearer ${grant}`,
      'X-Cashu': await mintToken(mint.url, 30),
    },
    compute,
  );
  t.equal(topUp.allowed, true);
  t.equal(topUp.headers['x-user-id'], first.headers['x-user-id']);
  t.match(topUp.headers['set-cookie'], /Max-Age=240;/, '60 s + 180 s bought');

  clock.ms += 200_000;
  const later = await send(
    s,
    'forward',
    { Authorization: `Bearer ${topUp.headers['x-paygress-grant']}` },
    compute,
  );
  t.equal(later.allowed, true, 'still valid after the first minute');
});

t.test('a pod that vanished while paid for is made anew', async (t) => {
  const clock = new FakeClock();
  const { s, grant, pod } = await paidPod(30, clock);
  const exists = () => kube.pods('paid').some((p) => p.metadata.name === pod);
  t.ok(exists(), 'provisioned');

  kube.remove('paid', pod);
  clock.ms += 61_000;
  const later = await send(
    s,
    'forward',
    { Authorization: `Bearer ${grant}` },
    compute,
  );
  t.equal(later.allowed, true);
  t.equal(later.headers['x-provisioned-pod'], pod);
  t.ok(exists(), 'confirmed again, and made anew');

  kube.remove('paid', pod);
  const toppedUp = await topUp(s, grant, 10);
  t.equal(toppedUp.allowed, true, 'a top-up is not refused for the lost pod');
  t.ok(exists(), 'and makes it anew');

  // A namespace at its quota refuses creates, even of a pod that exists:
  // confirming the pod reads it instead, so its payer is not turned away.
  kube.forbid('create');
  t.teardown(() => kube.allow('create'));
  clock.ms += 61_000;
  const atQuota = await send(
    s,
    'forward',
    { Authorization: `Bearer ${grant}` },
    compute,
  );
  t.equal(atQuota.allowed, true, 'confirmed by a read');
});

t.test(
  'requests on one grant confirm its pod once, and a failure is not asked again at once',
  async (t) => {
    const clock = new FakeClock();
    const paid = await paidPod(60, clock);
    const { s, pod } = paid;
    const grant = { Authorization: `Bearer ${paid.grant}` };
    const reads = () =>
      kube.requests.filter(
        (r) => r.method === 'GET' && r.path.endsWith(`/pods/${pod}`),
      ).length;

    clock.ms += 61_000;
    kube.delay(200);
    let before = reads();
    const many = await Promise.all(
      Array.from({ length: 50 }, () => send(s, 'forward', grant, compute)),
    );
    kube.delay(0);
    t.equal(many.filter((o) => o.allowed).length, 50, 'all allowed');
    t.equal(reads() - before, 1, 'on one read of the pod');

    clock.ms += 61_000;
    kube.forbid('get');
    t.teardown(() => kube.allow('get'));
    before = reads();
    for (let i = 0; i < 10; i++) {
      const out = await send(s, 'forward', grant, compute);
      t.equal(out.reason, 'PAYGRESS_PROVISION_FAILED', `refused ${i + 1}`);
    }
    t.equal(reads() - before, 1, 'the failing API was asked once');

    kube.allow('get');
    clock.ms += 5_001;
    const recovered = await send(s, 'forward', grant, compute);
    t.equal(recovered.allowed, true, 'asked again after the Retry-After');
    t.equal(reads() - before, 2);
  },
);

t.test('a pod evicted while paid for is made anew', async (t) => {
  const clock = new FakeClock();
  const { s, grant, pod } = await paidPod(60, clock);
  const current = () => kube.pods('paid').find((p) => p.metadata.name === pod);
  const evicted = current()!.metadata.uid;
  kube.setStatus('paid', pod, { phase: 'Failed', reason: 'Evicted' });

  clock.ms += 61_000;
  const later = await send(
    s,
    'forward',
    { Authorization: `Bearer ${grant}` },
    compute,
  );
  t.equal(later.allowed, true, 'the paid time is not lost');
  t.equal(later.headers['x-provisioned-pod'], pod);
  t.not(current()?.metadata.uid, evicted, 'a new pod of the same name');
  t.equal(current()?.status?.phase, 'Pending');
});

t.test('a top-up for a pod that has stopped is handed back', async (t) => {
  const { s, grant, pod } = await paidPod(10);
  kube.setStatus('paid', pod, { phase: 'Failed', reason: 'DeadlineExceeded' });

  const refused = await topUp(s, grant, 10);
  t.equal(refused.reason, 'PAYGRESS_PROVISION_FAILED');
  t.match(refused.headers['x-cashu'], /^cashuB/, 'the top-up is refunded');
});

t.test(
  'a top-up whose extend went unanswered stays paid, on the extended grant',
  async (t) => {
    const { s, grant, pod } = await paidPod(10, undefined, {
      PAYGRESS_PROVISIONING_TIMEOUT_MS: '300',
    });
    const expiry = () => podExpiry(pod);
    const stored = () =>
      s.app.store.balances().reduce((n, b) => n + b.available, 0);
    const before = stored();

    // The patch lands; its answer comes after Paygress stopped waiting.
    kube.delay(600, 'PATCH');
    t.teardown(() => kube.delay(0));
    const refused = await topUp(s, grant, 500);
    kube.delay(0);
    t.equal(refused.reason, 'PAYGRESS_PROVISION_FAILED');
    t.notOk(refused.headers['x-cashu'], 'not refunded: the time may be there');
    const credit = refused.headers['x-paygress-grant'];
    t.match(credit, /^pgr1\./, 'the payment stays on the extended grant');
    t.equal(stored() - before, 500, 'and is counted as paid');

    const retried = await send(
      s,
      'forward',
      { Authorization: `Bearer ${credit}` },
      compute,
    );
    t.equal(retried.allowed, true, 'the credit gets the request');
    t.equal(retried.headers['x-provisioned-pod'], pod);
    t.equal(
      Date.parse(expiry()!),
      expiryOf(credit!),
      'and the pod lives as long as the grant paid',
    );
  },
);

for (const restarted of [false, true]) {
  t.test(
    `a payment whose answer was lost buys, retried, what it bought before${restarted ? ', after a restart' : ''}`,
    async (t) => {
      const dataDir = tempDir('paygress-lost-grant-');
      let { s, lines } = await loggedStack(dataDir);
      const buy = () => buyGrant(s);
      /**
       * Sends `token` with `grant`, giving up before the answer comes;
       * then, in the restarted variant, Paygress restarts on its store.
       */
      const giveUp = async (token: string, grant?: string) => {
        await loseAnswer(t, s, lines, token, grant);
        if (restarted) {
          await s.close();
          ({ s, lines } = await loggedStack(dataDir));
        }
      };
      const one = await buy();
      const other = await buy();
      const otherUntil = podExpiry(other.pod);

      // A top-up of one grant, lost: retried with the other's credential
      // it would lengthen that one too.
      // (Ten minutes: under maxSeconds, whose cap counts from the time of
      // each attempt.)
      const topUp = await mintToken(mint.url, 100);
      await giveUp(topUp, one.grant);
      const lengthened = podExpiry(one.pod);
      const elsewhere = await send(
        s,
        'forward',
        { 'X-Cashu': topUp, Authorization: `Bearer ${other.grant}` },
        compute,
      );
      t.equal(elsewhere.reason, 'PAYGRESS_GRANT_SCOPE');
      t.match(elsewhere.body, /retry it with that grant's credential/);
      t.equal(
        podExpiry(other.pod),
        otherUntil,
        'the other pod is not lengthened',
      );
      const again = await topUp_(s, topUp, one.grant);
      t.equal(again.allowed, true, 'with its own credential it is delivered');
      t.equal(again.headers['x-provisioned-pod'], one.pod);
      t.equal(podExpiry(one.pod), lengthened, 'the time it bought, once');

      // A new grant, lost while its pod was made: retried with a
      // credential it buys that grant again, and tops up nothing.
      const fresh = await mintToken(mint.url, 600);
      const podsBefore = kube.pods('paid').length;
      await giveUp(fresh);
      const made = kube.pods('paid').length;
      t.equal(made, podsBefore + 1, 'its pod was made');
      const retried = await topUp_(s, fresh, other.grant);
      t.equal(retried.allowed, true);
      t.not(retried.headers['x-provisioned-pod'], other.pod, 'its own pod');
      t.equal(kube.pods('paid').length, made, 'and no other');
      t.equal(
        podExpiry(other.pod),
        otherUntil,
        'the other pod is not lengthened',
      );
    },
  );
}

t.test(
  'a top-up cut short by a shutdown buys, retried after the restart, the grant it lengthened',
  async (t) => {
    const dataDir = tempDir('paygress-cut-top-up-');
    const env = { ENABLE_POD_PROVISIONING: 'true' };
    let s = await startStack({ mint, configFile, dataDir, env });
    const buy = () => buyGrant(s);
    const one = await buy();
    const other = await buy();
    const otherUntil = podExpiry(other.pod);

    // The patch lands at once; its answer is held past the shutdown's
    // grace, so the call is cut and the payment stays owed.
    const token = await mintToken(mint.url, 100);
    kube.delay(3000, 'PATCH');
    t.teardown(() => kube.delay(0));
    const cut = topUp_(s, token, one.grant).catch((err: unknown) => err);
    await new Promise((r) => setTimeout(r, 400));
    await s.close();
    await cut;
    kube.delay(0);
    const lengthened = podExpiry(one.pod);

    s = await startStack({ mint, configFile, dataDir, env });
    t.teardown(() => s.close());
    const elsewhere = await topUp_(s, token, other.grant);
    t.equal(elsewhere.reason, 'PAYGRESS_GRANT_SCOPE');
    t.equal(
      podExpiry(other.pod),
      otherUntil,
      'the other pod is not lengthened',
    );
    const again = await topUp_(s, token, one.grant);
    t.equal(again.allowed, true, 'with its own credential it is delivered');
    t.equal(podExpiry(one.pod), lengthened, 'the time it bought, once');
  },
);

t.test(
  "a lost top-up retried on another route is told to go back to its grant's",
  async (t) => {
    const { s, lines } = await loggedStack();
    const { grant } = await buyGrant(s);
    const token = await mintToken(mint.url, 100);
    await loseAnswer(t, s, lines, token, grant);

    const there = await send(
      s,
      'forward',
      { 'X-Cashu': token, Authorization: `Bearer ${grant}` },
      { path: '/notebook/1' },
    );
    t.equal(there.reason, 'PAYGRESS_GRANT_SCOPE');
    t.match(
      there.body,
      /lengthened a grant of route compute: retry it there, with that grant's credential/,
    );
    const back = await topUp_(s, token, grant);
    t.equal(back.allowed, true, 'on its own route it is delivered');
  },
);

t.test(
  'a retry while the first request is still answering is told to wait, not that the token is spent',
  async (t) => {
    const { s, lines } = await loggedStack();
    const lost = () =>
      lines.filter((l) => String(l.msg).startsWith('paid answer not delivered'))
        .length;
    const token = await mintToken(mint.url, 10);
    // The pod takes 1.5 s; the payer gives up after 200 ms and retries.
    kube.delay(1500, 'POST');
    t.teardown(() => kube.delay(0));
    const first = fetch(`${s.base}/auth/forward`, {
      headers: {
        'X-Cashu': token,
        'X-Forwarded-Method': 'GET',
        'X-Forwarded-Proto': 'https',
        'X-Forwarded-Host': 'app.example',
        'X-Forwarded-Uri': compute.path,
      },
      signal: AbortSignal.timeout(200),
    }).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 500));
    const early = await send(s, 'forward', { 'X-Cashu': token }, compute);
    t.equal(
      early.reason,
      'PAYGRESS_TOKEN_PENDING',
      'not PAYGRESS_TOKEN_REPLAYED',
    );
    await first;
    for (let i = 0; lost() === 0 && i < 500; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    kube.delay(0);
    t.equal(lost(), 1, "the first request's answer was lost");
    const retry = await send(s, 'forward', { 'X-Cashu': token }, compute);
    t.equal(retry.allowed, true, 'the token still buys its grant');
  },
);

t.test(
  'an owed top-up sent back as too little is not handed back: its time stands',
  async (t) => {
    const { s, lines } = await loggedStack();
    const { grant, pod } = await buyGrant(s);
    const token = await mintToken(mint.url, 20);
    await loseAnswer(t, s, lines, token, grant);
    const lengthened = podExpiry(pod);

    // Its proofs relabelled as 1 sat each: refused as worth too little,
    // and, the top-up having lengthened the pod, not refunded.
    const asOne = await relabelled(mint.url, token, () => 1);
    const small = await topUp_(s, asOne, grant);
    t.equal(small.reason, 'PAYGRESS_INSUFFICIENT_AMOUNT');
    t.notOk(small.headers['x-cashu']?.startsWith('cashuB'), 'no refund');
    t.equal(s.app.store.owedCount(), 1, 'still owed');
    t.equal(podExpiry(pod), lengthened);
    const retried = await topUp_(s, token, grant);
    t.equal(retried.allowed, true, 'the token itself gets the time');
  },
);

t.test(
  'an owed new grant handed back as too little takes its pod with it',
  async (t) => {
    const { s, lines } = await loggedStack();
    const names = () => new Set(kube.pods('paid').map((p) => p.metadata.name));
    const before = names();
    const token = await mintToken(mint.url, 100);
    await loseAnswer(t, s, lines, token);
    const made = [...names()].filter((n) => !before.has(n));
    t.equal(
      made.length,
      1,
      'the payment made its pod before its answer was lost',
    );

    // Its proofs relabelled as 1 sat each: too little for a grant, and
    // the payer had nothing of it: the money comes back, the pod goes.
    const asOne = await relabelled(mint.url, token, () => 1);
    const small = await send(s, 'forward', { 'X-Cashu': asOne }, compute);
    t.equal(small.reason, 'PAYGRESS_INSUFFICIENT_AMOUNT');
    t.match(small.headers['x-cashu'], /^cashuB/, 'the payment comes back');
    for (let i = 0; i < 100 && names().has(made[0]!); i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    t.notOk(names().has(made[0]!), 'and its pod goes');
  },
);

t.test(
  'an owed top-up whose retry meets a failing API stays on the grant its first attempt lengthened',
  async (t) => {
    const { s, lines } = await loggedStack();
    const { grant, pod } = await buyGrant(s);
    const token = await mintToken(mint.url, 20);
    await loseAnswer(t, s, lines, token, grant);
    const lengthened = podExpiry(pod);

    kube.forbid('patch');
    kube.forbid('get');
    t.teardown(() => kube.allow());
    const retried = await topUp_(s, token, grant);
    kube.allow();
    t.equal(retried.reason, 'PAYGRESS_PROVISION_FAILED');
    t.notOk(retried.headers['x-cashu'], 'not refunded: the time is on the pod');
    const credit = retried.headers['x-paygress-grant'];
    t.match(credit, /^pgr1\./, 'the payment stays on the extended grant');
    t.equal(idOf(credit!), idOf(grant));
    t.equal(podExpiry(pod), lengthened);
    const used = await send(
      s,
      'forward',
      { Authorization: `Bearer ${credit}` },
      compute,
    );
    t.equal(used.allowed, true, 'and the credential gets the requests');
  },
);

t.test(
  'a top-up refund whose answer was lost is refunded again on the retry, not kept as a credit',
  async (t) => {
    const { s, lines } = await loggedStack();
    const { grant, pod } = await buyGrant(s);
    const before = podExpiry(pod);
    // A definite refusal: nothing lengthened, the top-up handed back, and
    // that answer lost.
    kube.forbid('patch');
    kube.forbid('get');
    t.teardown(() => kube.allow());
    const token = await mintToken(mint.url, 20);
    await loseAnswer(t, s, lines, token, grant, 'GET');
    t.equal(podExpiry(pod), before, 'the pod was not lengthened');

    const retried = await topUp_(s, token, grant);
    kube.allow();
    t.equal(retried.reason, 'PAYGRESS_PROVISION_FAILED');
    t.match(retried.headers['x-cashu'], /^cashuB/, 'refunded again');
    t.notOk(
      retried.headers['x-paygress-grant'],
      'no credit for time not given',
    );
  },
);

t.test(
  'grants among several credentials: planted cookies hide none, and a lost top-up finds its own',
  async (t) => {
    const { s, lines } = await loggedStack();
    const buy = async () => (await buyGrant(s)).grant;
    const x = await buy();
    const y = await buy();
    const junk = Array.from(
      { length: 40 },
      (_, i) => `__Host-paygress_grant=pgr1.junk${i}.x`,
    ).join('; ');
    const behind = await send(
      s,
      'forward',
      { Cookie: `${junk}; __Host-paygress_grant=${x}` },
      compute,
    );
    t.equal(behind.allowed, true, 'the grant after 40 planted cookies is used');

    const token = await mintToken(mint.url, 20);
    await loseAnswer(t, s, lines, token, x);
    const both = await send(
      s,
      'forward',
      {
        'X-Cashu': token,
        Cookie: `__Host-paygress_grant=${y}; __Host-paygress_grant=${x}`,
      },
      compute,
    );
    t.equal(both.allowed, true, 'the retry finds its grant behind another');
    t.equal(idOf(both.headers['x-paygress-grant']!), idOf(x));
  },
);

t.test(
  'a lost top-up retried once its grant has expired tops that grant up, after a restart too',
  async (t) => {
    const clock = new FakeClock();
    const dataDir = tempDir('paygress-expired-top-up-');
    const start = async () => {
      const { logger, lines } = keptLog();
      const s = await startStack({
        mint,
        configFile,
        dataDir,
        clock,
        logger,
        env: { ENABLE_POD_PROVISIONING: 'true' },
      });
      t.teardown(() => s.close());
      return { s, lines };
    };
    let { s, lines } = await start();
    const { grant, pod } = await buyGrant(s);

    // The top-up lengthens the pod; its answer never arrives.
    const topUp = await mintToken(mint.url, 100);
    await loseAnswer(t, s, lines, topUp, grant);
    const lengthened = Date.parse(podExpiry(pod)!);

    await s.close();
    ({ s, lines } = await start());
    clock.ms += 61_000;
    t.ok(clock.ms > expiryOf(grant), 'the grant has expired');

    const bare = await send(s, 'forward', { 'X-Cashu': topUp }, compute);
    t.equal(bare.reason, 'PAYGRESS_GRANT_SCOPE', 'not without its credential');
    const retried = await topUp_(s, topUp, grant);
    t.equal(
      retried.allowed,
      true,
      'with the expired credential it is delivered',
    );
    t.equal(retried.headers['x-provisioned-pod'], pod, 'on the same pod');
    const renewed = retried.headers['x-paygress-grant']!;
    t.equal(
      expiryOf(renewed),
      clock.ms + 600_000,
      'ten minutes from the retry, as a top-up of an expired grant buys',
    );
    t.ok(
      Date.parse(podExpiry(pod)!) >= lengthened,
      'and the pod lives at least as long',
    );
    const used = await send(
      s,
      'forward',
      { Authorization: `Bearer ${renewed}` },
      compute,
    );
    t.equal(used.allowed, true, 'the renewed credential covers requests');
    const again = await topUp_(s, topUp, grant);
    t.equal(again.reason, 'PAYGRESS_TOKEN_REPLAYED', 'once');
  },
);

t.test(
  'a top-up checked before its grant expired keeps the pod the reaper would take meanwhile',
  async (t) => {
    const clock = new FakeClock();
    const provisioner = new KubernetesProvisioner({
      kubeConfig: kubeConfigFor(kube),
      namespace: 'paid',
      template: {
        image: 'registry.example/workspace:1',
        labels: { app: 'workspace' },
      },
      clock,
      reapIntervalMs: 3_600_000,
    });
    const s = await startStack({ mint, configFile, clock, provisioner });
    t.teardown(() => s.close());
    const first = await send(
      s,
      'forward',
      { 'X-Cashu': await mintToken(mint.url, 10) },
      compute,
    );
    const pod = first.headers['x-provisioned-pod']!;
    const uid = () =>
      kube.pods('paid').find((p) => p.metadata.name === pod)?.metadata.uid;
    const before = uid();

    // One second left: the payer tops up, and the swap takes a while.
    clock.ms += 59_000;
    const token = await mintToken(mint.url, 100);
    mint.setFault('swap', { kind: 'delay', ms: 600 });
    t.teardown(() => mint.setFault('swap', undefined));
    const topping = topUp_(s, token, first.headers['x-paygress-grant']!);
    await new Promise((r) => setTimeout(r, 200));
    clock.ms += 2_000;
    t.equal(await provisioner.reap(), 0, 'the expired pod is kept a while');
    const out = await topping;
    t.equal(out.allowed, true);
    t.equal(out.headers['x-provisioned-pod'], pod);
    t.equal(uid(), before, 'the very pod, not one made anew');
  },
);

t.test(
  'a payment sent with a cookie this Paygress cannot read buys a grant of its own',
  async (t) => {
    const other = await startStack({
      mint,
      configFile,
      env: { PAYGRESS_GRANT_KEY: 'another-deployment-key-0123456789abcdef' },
    });
    t.teardown(() => other.close());
    const foreign = (
      await send(
        other,
        'forward',
        { 'X-Cashu': await mintToken(mint.url, 10) },
        compute,
      )
    ).headers['x-paygress-grant']!;
    const s = await stack();

    const cookie = { Cookie: `__Host-paygress_grant=${foreign}` };
    const unpaid = await send(s, 'forward', cookie, compute);
    t.equal(unpaid.reason, 'PAYGRESS_GRANT_INVALID', 'alone it is refused');
    const paid = await send(
      s,
      'forward',
      { ...cookie, 'X-Cashu': await mintToken(mint.url, 10) },
      compute,
    );
    t.equal(paid.allowed, true, 'with a payment it is set aside');
    t.match(
      paid.headers['set-cookie'],
      /^__Host-paygress_grant=pgr1\./,
      'and the new grant replaces it',
    );
    const header = await send(
      s,
      'forward',
      {
        Authorization: `Bearer ${foreign}`,
        'X-Cashu': await mintToken(mint.url, 10),
      },
      compute,
    );
    t.equal(
      header.reason,
      'PAYGRESS_GRANT_INVALID',
      'sent as Authorization, it is refused before anything is redeemed',
    );

    // Set with another domain, the foreign cookie stays beside Paygress's
    // own, and the browser sends it first.
    const ours = paid.headers['x-paygress-grant']!;
    const both = {
      Cookie: `__Host-paygress_grant=${foreign}; __Host-paygress_grant=${ours}`,
    };
    const used = await send(s, 'forward', both, compute);
    t.equal(used.allowed, true, 'the grant in the second cookie is used');
    const topped = await send(
      s,
      'forward',
      { ...both, 'X-Cashu': await mintToken(mint.url, 10) },
      compute,
    );
    t.equal(topped.allowed, true);
    t.equal(
      idOf(topped.headers['x-paygress-grant']!),
      idOf(ours),
      'and topped up, not replaced by a new grant',
    );
  },
);

t.test(
  'over https a grant cookie a sibling domain planted is never used; over http the plain name is',
  async (t) => {
    const s = await stack();
    const attacker = (await buyGrant(s)).grant;
    const victim = await buyGrant(s);
    const planted = `paygress_grant=${attacker}`;
    const own = `__Host-paygress_grant=${victim.grant}`;

    for (const protocol of PROTOCOLS) {
      const both = await send(
        s,
        protocol,
        { Cookie: `${planted}; ${own}` },
        compute,
      );
      t.equal(both.allowed, true, `${protocol}: the payer's own is used`);
      t.equal(both.headers['x-user-id'], victim.out.headers['x-user-id']);

      const alone = await send(s, protocol, { Cookie: planted }, compute);
      t.equal(
        alone.reason,
        'PAYGRESS_PAYMENT_REQUIRED',
        `${protocol}: a planted one alone is not a grant`,
      );
    }

    const paid = await send(
      s,
      'forward',
      { Cookie: planted, 'X-Cashu': await mintToken(mint.url, 10) },
      compute,
    );
    t.equal(paid.allowed, true);
    t.not(
      idOf(paid.headers['x-paygress-grant']!),
      idOf(attacker),
      "a payment beside a planted cookie buys the payer's own grant",
    );
    t.match(paid.headers['set-cookie'], /^__Host-paygress_grant=pgr1\./);

    // A browser keeps a cookie set before Paygress used __Host- under the
    // plain name: its grant is still good until it expires.
    const older = asIssuedBeforeHostCookies(
      victim.grant,
      'a-test-grant-key-that-is-long-enough-0123456789',
    );
    const kept = await send(
      s,
      'forward',
      { Cookie: `paygress_grant=${older}` },
      compute,
    );
    t.equal(kept.allowed, true, 'a credential issued before is read');
    t.equal(kept.headers['x-user-id'], victim.out.headers['x-user-id']);

    // But a payment never tops one up: planted, it would hand the
    // attacker's grant back to the payer as a __Host- cookie.
    const plantedOlder = asIssuedBeforeHostCookies(
      attacker,
      'a-test-grant-key-that-is-long-enough-0123456789',
    );
    for (const protocol of PROTOCOLS) {
      const beside = await send(
        s,
        protocol,
        {
          Cookie: `paygress_grant=${plantedOlder}`,
          'X-Cashu': await mintToken(mint.url, 10),
        },
        compute,
      );
      t.equal(beside.allowed, true);
      t.not(
        beside.headers['x-user-id'],
        idOf(attacker),
        `${protocol}: a payment beside an older planted cookie buys its own grant`,
      );
    }

    const http = { ...compute, scheme: 'http' as const };
    const plain = await send(
      s,
      'forward',
      { 'X-Cashu': await mintToken(mint.url, 10) },
      http,
    );
    const cookie = plain.headers['set-cookie'];
    t.match(
      cookie,
      /^paygress_grant=pgr1\.[^;]+; Path=\/; Max-Age=\d+; HttpOnly; SameSite=Lax$/,
    );
    for (const protocol of PROTOCOLS) {
      const again = await send(
        s,
        protocol,
        { Cookie: cookie!.split(';')[0]! },
        http,
      );
      t.equal(again.allowed, true, `${protocol}: over http the plain name`);
    }
  },
);

t.test('a second replica with the same key accepts the grant', async (t) => {
  const a = await stack();
  const b = await stack();
  const paid = await send(
    a,
    'forward',
    { 'X-Cashu': await mintToken(mint.url, 10) },
    compute,
  );
  const onB = await send(
    b,
    'nginx',
    { Authorization: `Bearer ${paid.headers['x-paygress-grant']}` },
    compute,
  );
  t.equal(onB.allowed, true);
  t.equal(onB.headers['x-user-id'], paid.headers['x-user-id']);
});

t.test('X-Required-Amount counts only from a trusted ingress', async (t) => {
  const untrusted = await stack();
  const ignored = await send(untrusted, 'forward', {
    'X-Required-Amount': '1',
  });
  t.equal(
    ignored.headers['x-payment-amount'],
    '100',
    'a client cannot lower the price',
  );

  const trusted = await stack({
    PAYGRESS_TRUST_REQUIRED_AMOUNT_HEADER: 'true',
  });
  const priced = await send(trusted, 'forward', { 'X-Required-Amount': '250' });
  t.equal(priced.headers['x-payment-amount'], '250');
  const bogus = await send(trusted, 'forward', { 'X-Required-Amount': '0' });
  t.equal(
    bogus.reason,
    'PAYGRESS_INTERNAL',
    'an unusable trusted price fails closed',
  );
});

t.test(
  'a grant the payment cannot top up does not stop the payment',
  async (t) => {
    const clock = new FakeClock();
    const s = await stack({}, clock);
    const paid = await send(
      s,
      'forward',
      { 'X-Cashu': await mintToken(mint.url, 10) },
      compute,
    );
    const grant = paid.headers['x-paygress-grant']!;
    // A browser sends the grant cookie (Path=/) to every route.
    const cookie = { Cookie: `__Host-paygress_grant=${grant}` };

    const elsewhere = await send(s, 'forward', {
      ...cookie,
      'X-Cashu': await mintToken(mint.url, 100),
    });
    t.equal(elsewhere.allowed, true, "another route's grant is set aside");
    t.equal(elsewhere.headers['x-payment-amount'], '100');

    clock.ms += 61_000;
    const expired = await send(s, 'forward', { ...cookie }, compute);
    t.equal(expired.reason, 'PAYGRESS_GRANT_EXPIRED', 'lapsed alone');
    const renewed = await send(
      s,
      'forward',
      { ...cookie, 'X-Cashu': await mintToken(mint.url, 10) },
      compute,
    );
    t.equal(renewed.allowed, true, 'with a payment, it buys a new grant');
    t.not(renewed.headers['x-paygress-grant'], grant);
  },
);

t.test('provisioning off makes no API call', async (t) => {
  const before = kube.requests.length;
  const s = await stack();
  const paid = await send(s, 'forward', {
    'X-Cashu': await mintToken(mint.url, 100),
  });
  t.equal(paid.allowed, true);
  t.equal(paid.headers['x-provisioned-pod'], '');
  // Other tests' Paygresses still sweep (list and delete); none of them
  // makes or changes a pod without a payment.
  t.same(
    kube.requests
      .slice(before)
      .filter((r) => r.method === 'POST' || r.method === 'PATCH'),
    [],
  );
});

t.test('a paid grant gets one pod; grant requests reuse it', async (t) => {
  const s = await stack({ ENABLE_POD_PROVISIONING: 'true' });
  const paid = await send(
    s,
    'forward',
    { 'X-Cashu': await mintToken(mint.url, 10) },
    compute,
  );
  t.equal(paid.allowed, true);
  const pod = paid.headers['x-provisioned-pod']!;
  t.match(pod, /^paygress-[0-9a-f]{20}$/);
  const created = kube.pods('paid').find((p) => p.metadata.name === pod);
  t.ok(created, 'the pod exists in POD_NAMESPACE');
  t.equal(created?.spec.containers[0]?.image, 'registry.example/workspace:1');

  const creates = kube.requests.filter((r) => r.method === 'POST').length;
  const again = await send(
    s,
    'ext-authz',
    { Authorization: `Bearer ${paid.headers['x-paygress-grant']}` },
    compute,
  );
  t.equal(again.headers['x-provisioned-pod'], pod);
  t.equal(
    kube.requests.filter((r) => r.method === 'POST').length,
    creates,
    'no second pod',
  );
});

t.test(
  'a payment whose answer is lost while its pod is made gets that pod on the retry, not another',
  async (t) => {
    const { s, lost } = await loggedStack();
    const before = new Set(kube.pods('paid').map((p) => p.metadata.name));
    const fresh = () =>
      kube.pods('paid').filter((p) => !before.has(p.metadata.name));
    const token = await mintToken(mint.url, 600);
    const headers = {
      'X-Cashu': token,
      'X-Forwarded-Method': 'GET',
      'X-Forwarded-Proto': 'https',
      'X-Forwarded-Host': 'app.example',
      'X-Forwarded-Uri': compute.path,
    };
    // The create takes effect at once; its answer comes after the payer
    // stopped waiting, three times over.
    kube.delay(400);
    t.teardown(() => kube.delay(0));
    for (let i = 0; i < 3; i++) {
      const outcome = await fetch(`${s.base}/auth/forward`, {
        headers,
        signal: AbortSignal.timeout(150),
      }).then(
        () => 'answered',
        (err: Error) => err.name,
      );
      t.equal(outcome, 'TimeoutError', `attempt ${i + 1}: gave up`);
      // Paygress finishes the attempt and learns its answer was lost.
      for (let waited = 0; lost() <= i && waited < 10_000; waited += 20) {
        await new Promise((r) => setTimeout(r, 20));
      }
      t.equal(lost(), i + 1, `attempt ${i + 1}: owed again`);
    }
    kube.delay(0);
    t.equal(fresh().length, 1, 'one pod for the payment so far');

    const retry = await send(s, 'forward', { 'X-Cashu': token }, compute);
    t.equal(retry.allowed, true, 'the retry gets what was paid for');
    t.same(
      fresh().map((p) => p.metadata.name),
      [retry.headers['x-provisioned-pod']],
      'the pod the first attempt made, and no other',
    );
    const again = await send(s, 'forward', { 'X-Cashu': token }, compute);
    t.equal(again.reason, 'PAYGRESS_TOKEN_REPLAYED', 'delivered once');
  },
);

for (const [protocol, status] of [
  ['forward', 503],
  ['ext-authz', 503],
] as const) {
  t.test(
    `${protocol}: when the pod cannot be made the payment comes back`,
    async (t) => {
      const s = await stack({ ENABLE_POD_PROVISIONING: 'true' });
      kube.forbid('create');
      t.teardown(() => kube.allow('create'));
      const stored = () =>
        s.app.store.balances().reduce((n, b) => n + b.available, 0);
      const before = stored();

      const out = await send(
        s,
        protocol,
        { 'X-Cashu': await mintToken(mint.url, 10) },
        compute,
      );
      t.equal(out.allowed, false);
      t.equal(out.status, status);
      t.equal(out.reason, 'PAYGRESS_PROVISION_FAILED');
      const refund = out.headers['x-cashu']!;
      t.match(refund, /^cashuB/);
      t.equal(stored(), before, 'the refunded value is not counted as ours');

      const wallet = new Wallet(mint.url, { unit: 'sat' });
      await wallet.loadMint();
      const received = await wallet.receive(refund);
      t.equal(
        received.reduce((n, p) => n + p.amount.toNumber(), 0),
        10,
        'the refund is spendable',
      );
    },
  );
}

t.test(
  'a refunded payment leaves no pod, even one its timed-out create made',
  async (t) => {
    const s = await stack({
      ENABLE_POD_PROVISIONING: 'true',
      PAYGRESS_PROVISIONING_TIMEOUT_MS: '300',
    });
    const before = kube.pods('paid').length;
    kube.delay(600);
    t.teardown(() => kube.delay(0));

    const out = await send(
      s,
      'forward',
      { 'X-Cashu': await mintToken(mint.url, 10) },
      compute,
    );
    t.equal(out.reason, 'PAYGRESS_PROVISION_FAILED');
    t.match(out.headers['x-cashu'], /^cashuB/, 'refunded');
    t.equal(kube.pods('paid').length, before + 1, 'the create took effect');

    kube.delay(0);
    let pods = before + 1;
    for (let i = 0; i < 40 && pods > before; i++) {
      await new Promise((r) => setTimeout(r, 50));
      pods = kube.pods('paid').length;
    }
    t.equal(pods, before, 'and its pod is deleted');
  },
);

t.test(
  'a pod a late create makes for a refunded payment is deleted after a restart too',
  async (t) => {
    const dataDir = tempDir('paygress-refunded-');
    const env = {
      ENABLE_POD_PROVISIONING: 'true',
      PAYGRESS_PROVISIONING_TIMEOUT_MS: '300',
    };
    const first = await startStack({ mint, configFile, dataDir, env });
    kube.delay(600, 'POST');
    t.teardown(() => kube.delay(0));
    // An hour of grant: watched for ten minutes of it.
    const out = await send(
      first,
      'forward',
      { 'X-Cashu': await mintToken(mint.url, 600) },
      compute,
    );
    kube.delay(0);
    t.match(out.headers['x-cashu'], /^cashuB/, 'refunded');
    const [refunded] = first.app.store.refundedGrants(Date.now());
    t.ok(refunded, 'the refund keeps until when to watch for its pod');
    t.ok(
      refunded!.until <= Date.now() + 10 * 60_000,
      'ten minutes, not the hour the grant would have run',
    );
    await first.close();

    // The create lands only now, as a real API server may apply it.
    const late = new KubernetesProvisioner({
      kubeConfig: kubeConfigFor(kube),
      namespace: 'paid',
      template: {
        image: 'registry.example/workspace:1',
        labels: { app: 'workspace' },
      },
    });
    const grant = grantIdFor(refunded!.id);
    await late.ensure(grant, refunded!.until);
    const pod = late.podName(grant);
    t.ok(kube.pods('paid').some((p) => p.metadata.name === pod));

    const second = await startStack({ mint, configFile, dataDir, env });
    t.teardown(() => second.close());
    t.notOk(
      kube.pods('paid').some((p) => p.metadata.name === pod),
      "the restarted Paygress's first sweep deleted it",
    );
  },
);

t.test(
  "the payer is not told about the operator's cluster; the log is",
  async (t) => {
    const { s, lines } = await loggedStack();
    kube.forbid('create');
    t.teardown(() => kube.allow('create'));

    for (const protocol of ['forward', 'ext-authz'] as const) {
      const out = await send(
        s,
        protocol,
        { 'X-Cashu': await mintToken(mint.url, 10) },
        compute,
      );
      t.equal(out.reason, 'PAYGRESS_PROVISION_FAILED');
      const { message } = JSON.parse(out.body!) as { message: string };
      t.match(message, /could not be started.*returned in X-Cashu/);
      for (const secret of [new URL(kube.url).host, 'service', 'paid']) {
        t.notOk(message.includes(secret), `${protocol}: no "${secret}"`);
      }
    }
    const logged = lines.filter(
      (l) => l.reason === 'PAYGRESS_PROVISION_FAILED',
    );
    t.equal(logged.length, 2, 'each refusal is logged');
    for (const line of logged) {
      t.match(
        line.detail,
        /may not create pods in namespace paid/,
        'with what the operator needs',
      );
    }
  },
);

t.test(
  'behind nginx the refund rides on a 401, the status nginx passes on',
  async (t) => {
    const s = await stack({ ENABLE_POD_PROVISIONING: 'true' });
    kube.forbid('create');
    t.teardown(() => kube.allow('create'));

    const out = await send(
      s,
      'nginx',
      { 'X-Cashu': await mintToken(mint.url, 10) },
      compute,
    );
    t.equal(out.status, 401);
    t.equal(out.reason, 'PAYGRESS_PROVISION_FAILED');
    t.match(out.headers['x-cashu'], /^cashuB/);
    t.equal(out.headers['cache-control'], 'no-store', 'never cached');
    t.match(
      out.headers['www-authenticate'],
      /refund="cashuB[^"]+"/,
      'even without snippets',
    );
  },
);
