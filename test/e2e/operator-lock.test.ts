/**
 * With an operator key configured, every proof Paygress receives is
 * P2PK-locked (NUT-11) to that key: the sidecar's disk holds no money a
 * thief could spend, and a payment that cannot be delivered stays on the
 * payer's grant instead of being handed back.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import type { Test } from 'tap';
import {
  Wallet,
  createRandomSecretKey,
  getPubKeyFromPrivKey,
} from '@cashu/cashu-ts';
import { encodeToken } from '../../src/core/token.ts';
import { podNameFor } from '../../src/k8s/pod-identity.ts';
import { KubernetesProvisioner } from '../../src/k8s/provisioner.ts';
import { startDevMint } from '../../src/devmint/index.ts';
import {
  FakeKubeApiServer,
  kubeConfigFor,
  writeKubeConfig,
} from '../support/fake-kube-apiserver.ts';
import { mintToken } from '../support/wallet.ts';
import { rateRouteConfig, send, startStack } from '../support/stack.ts';
import { tempDir } from '../support/temp-dir.ts';

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
const operatorKey = createRandomSecretKey();
const operatorPubkey = hex(getPubKeyFromPrivKey(operatorKey));

const mint = await startDevMint();
t.teardown(() => mint.close());
const kube = await FakeKubeApiServer.start();
t.teardown(() => kube.close());
const dir = tempDir('paygress-lock-');
process.env.KUBECONFIG = writeKubeConfig(kube, join(dir, 'kubeconfig'));
const configFile = join(dir, 'paygress.yaml');
writeFileSync(
  configFile,
  `provisioning:\n  enabled: true\n  template:\n    image: registry.example/workspace:1\n` +
    `grants:\n  key: a-test-grant-key-that-is-long-enough-0123456789\n`,
);

const s = await startStack({
  mint,
  configFile,
  env: { PAYGRESS_OPERATOR_PUBKEY: operatorPubkey },
});
t.teardown(() => s.close());

/**
 * A Paygress locking proofs to the operator, on a clock a test moves,
 * with `file` (default the per-request configuration above), closed
 * with `t`.
 */
async function lockedOn(t: Test, file = configFile) {
  const clock = { ms: Date.now(), now: () => clock.ms };
  const stack = await startStack({
    mint,
    configFile: file,
    clock,
    env: { PAYGRESS_OPERATOR_PUBKEY: operatorPubkey },
  });
  t.teardown(() => stack.close());
  return { stack, clock };
}

/** A rate route of 10 sat a minute, up to an hour, with `provisioning`. */
function rateConfig(provisioning: string): string {
  return rateRouteConfig(
    3600,
    `provisioning:\n  enabled: true\n${provisioning}`,
  );
}

t.test('stored proofs are locked to the operator key', async (t) => {
  const out = await send(s, 'forward', {
    'X-Cashu': await mintToken(mint.url, 100),
  });
  t.equal(out.allowed, true);

  const proofs = s.app.store.unspent(mint.url, 'sat');
  t.ok(proofs.length > 0);
  for (const proof of proofs) {
    const [kind, body] = JSON.parse(proof.secret) as [string, { data: string }];
    t.equal(kind, 'P2PK');
    t.equal(body.data, operatorPubkey);
  }

  const token = encodeToken(mint.url, 'sat', proofs);
  const thief = new Wallet(mint.url, { unit: 'sat' });
  await thief.loadMint();
  await t.rejects(thief.receive(token), 'useless without the operator key');

  const operator = new Wallet(mint.url, { unit: 'sat' });
  await operator.loadMint();
  const received = await operator.receive(token, { privkey: hex(operatorKey) });
  t.equal(
    received.reduce((n, p) => n + p.amount.toNumber(), 0),
    100,
  );
});

for (const protocol of ['forward', 'ext-authz'] as const) {
  t.test(
    `${protocol}: a failed pod leaves a credit on the grant, not a refund`,
    async (t) => {
      kube.forbid('create');
      const out = await send(s, protocol, {
        'X-Cashu': await mintToken(mint.url, 100),
      });
      kube.allow('create');
      t.equal(out.status, 503);

      t.equal(out.reason, 'PAYGRESS_PROVISION_FAILED');
      t.notOk(out.headers['x-cashu']?.startsWith('cashuB'), 'no refund token');
      const credit = out.headers['x-paygress-grant']!;
      t.match(credit, /^pgr1\./);

      const retry = await send(s, 'forward', {
        Authorization: `Bearer ${credit}`,
      });
      t.equal(
        retry.allowed,
        true,
        'the credit buys the request without paying again',
      );
      t.match(retry.headers['x-provisioned-pod'], /^paygress-/);
      const twice = await send(s, 'nginx', {
        Authorization: `Bearer ${credit}`,
      });
      t.equal(
        twice.reason,
        'PAYGRESS_GRANT_EXPIRED',
        'a per-request credit buys one',
      );
      t.ok(
        kube
          .pods('default')
          .some((p) => p.metadata.name === retry.headers['x-provisioned-pod']),
      );
    },
  );
}

t.test('a credit outlives a restart of Paygress', async (t) => {
  const dataDir = tempDir('paygress-lock-restart-');
  const env = { PAYGRESS_OPERATOR_PUBKEY: operatorPubkey };
  const before = await startStack({ mint, configFile, dataDir, env });
  kube.forbid('create');
  const out = await send(before, 'forward', {
    'X-Cashu': await mintToken(mint.url, 100),
  });
  kube.allow('create');
  await before.close();
  t.equal(out.reason, 'PAYGRESS_PROVISION_FAILED');
  const credit = out.headers['x-paygress-grant']!;
  t.match(credit, /^pgr1\./);

  const after = await startStack({ mint, configFile, dataDir, env });
  t.teardown(() => after.close());
  const retry = await send(after, 'nginx', {
    Authorization: `Bearer ${credit}`,
  });
  t.equal(retry.allowed, true, 'the credit buys the request after a restart');
  t.match(retry.headers['x-provisioned-pod'], /^paygress-/);
});

t.test('a credit buys no dearer request than it paid for', async (t) => {
  const trusted = await startStack({
    mint,
    configFile,
    env: {
      PAYGRESS_OPERATOR_PUBKEY: operatorPubkey,
      PAYGRESS_TRUST_REQUIRED_AMOUNT_HEADER: 'true',
    },
  });
  t.teardown(() => trusted.close());

  // The ingress prices this request at 1 sat; the pod fails: a credit.
  kube.forbid('create');
  const out = await send(trusted, 'forward', {
    'X-Required-Amount': '1',
    'X-Cashu': await mintToken(mint.url, 1),
  });
  kube.allow('create');
  const credit = out.headers['x-paygress-grant']!;
  t.match(credit, /^pgr1\./);

  const dear = await send(trusted, 'forward', {
    'X-Required-Amount': '1000',
    Authorization: `Bearer ${credit}`,
  });
  t.equal(dear.allowed, false, 'not for a request priced 1,000');
  t.equal(dear.reason, 'PAYGRESS_INSUFFICIENT_AMOUNT');

  const own = await send(trusted, 'forward', {
    'X-Required-Amount': '1',
    Authorization: `Bearer ${credit}`,
  });
  t.equal(own.allowed, true, 'but for one like the one it paid for');
});

t.test(
  'a credit whose answer was lost stays good for one request',
  async (t) => {
    kube.forbid('create');
    const out = await send(s, 'forward', {
      'X-Cashu': await mintToken(mint.url, 100),
    });
    kube.allow('create');
    const credit = out.headers['x-paygress-grant']!;
    t.match(credit, /^pgr1\./);

    // The pod takes longer than the caller waits: the credit is used, the
    // answer goes nowhere.
    kube.delay(600);
    const gaveUp = await fetch(`${s.base}/auth/forward`, {
      headers: {
        Authorization: `Bearer ${credit}`,
        'X-Forwarded-Method': 'GET',
        'X-Forwarded-Proto': 'https',
        'X-Forwarded-Host': 'app.example',
        'X-Forwarded-Uri': '/premium',
      },
      signal: AbortSignal.timeout(150),
    }).then(
      () => 'answered',
      (err: Error) => err.name,
    );
    t.equal(gaveUp, 'TimeoutError', 'the caller stopped waiting');
    await new Promise((resolve) => setTimeout(resolve, 1200));
    kube.delay(0);

    const retry = await send(s, 'ext-authz', {
      Authorization: `Bearer ${credit}`,
    });
    t.equal(retry.allowed, true, 'the credit still buys the request');
    const twice = await send(s, 'nginx', { Authorization: `Bearer ${credit}` });
    t.equal(twice.reason, 'PAYGRESS_GRANT_EXPIRED', 'once');
  },
);

t.test(
  'a credit outlasts a cluster outage: what it buys starts when its pod is made',
  async (t) => {
    const { stack: outage, clock } = await lockedOn(
      t,
      rateConfig('  template: { image: registry.example/workspace:1 }\n'),
    );
    const podExpiry = (pod: string) =>
      Date.parse(
        kube.pods('default').find((p) => p.metadata.name === pod)!.metadata
          .annotations!['paygress.dev/expires-at']!,
      );

    for (const [path, paid, seconds] of [
      ['/premium', 100, 300],
      ['/compute', 20, 120],
    ] as const) {
      kube.forbid('create');
      const out = await send(
        outage,
        'forward',
        { 'X-Cashu': await mintToken(mint.url, paid) },
        { path },
      );
      t.equal(out.reason, 'PAYGRESS_PROVISION_FAILED', path);
      const credit = out.headers['x-paygress-grant']!;
      t.match(credit, /^pgr1\./);

      // Six hours of a failing API, the payer retrying now and then.
      for (let hour = 1; hour <= 6; hour += 1) {
        clock.ms += 3_600_000;
        const retry = await send(
          outage,
          'forward',
          { Authorization: `Bearer ${credit}` },
          { path },
        );
        t.equal(
          retry.reason,
          'PAYGRESS_PROVISION_FAILED',
          `${path}, hour ${hour}`,
        );
      }
      kube.allow('create');
      clock.ms += 10_000;

      const served = await send(
        outage,
        'forward',
        { Authorization: `Bearer ${credit}` },
        { path },
      );
      t.equal(
        served.allowed,
        true,
        `${path}: the credit buys what it paid for`,
      );
      const pod = served.headers['x-provisioned-pod']!;
      t.equal(
        podExpiry(pod),
        clock.ms + seconds * 1000,
        `${path}: its pod runs ${seconds} s from now`,
      );
      const twice = await send(
        outage,
        'forward',
        { Authorization: `Bearer ${credit}` },
        { path },
      );
      t.equal(twice.reason, 'PAYGRESS_GRANT_EXPIRED', `${path}: once`);

      if (path === '/compute') {
        const grant = served.headers['x-paygress-grant']!;
        t.match(grant, /^pgr1\./, 'a rate credit becomes a grant');
        const later = await send(
          outage,
          'forward',
          { Authorization: `Bearer ${grant}` },
          { path },
        );
        t.equal(later.allowed, true, 'whose time serves later requests');
        t.equal(later.headers['x-provisioned-pod'], pod);
        clock.ms += seconds * 1000;
        const over = await send(
          outage,
          'forward',
          { Authorization: `Bearer ${grant}` },
          { path },
        );
        t.equal(over.reason, 'PAYGRESS_GRANT_EXPIRED', 'until it runs out');
      }
    }
  },
);

t.test(
  'a credit used at the end of its week still buys the whole request',
  async (t) => {
    const { stack: late, clock } = await lockedOn(t);
    kube.forbid('create');
    const out = await send(late, 'forward', {
      'X-Cashu': await mintToken(mint.url, 100),
    });
    kube.allow('create');
    const credit = out.headers['x-paygress-grant']!;

    clock.ms += 7 * 24 * 3600_000 - 10_000;
    const used = await send(late, 'forward', {
      Authorization: `Bearer ${credit}`,
    });
    t.equal(used.allowed, true, 'ten seconds before the week ends');
    const pod = kube
      .pods('default')
      .find((p) => p.metadata.name === used.headers['x-provisioned-pod'])!;
    t.equal(
      Date.parse(pod.metadata.annotations!['paygress.dev/expires-at']!),
      clock.ms + 300_000,
      'its pod runs 300 s, as any request paid for',
    );

    clock.ms += 20_000;
    const after = await send(late, 'forward', {
      Authorization: `Bearer ${credit}`,
    });
    t.equal(after.reason, 'PAYGRESS_GRANT_EXPIRED');
  },
);

t.test(
  'a used credit sent again neither lengthens nor remakes its pod',
  async (t) => {
    const { stack: again, clock } = await lockedOn(t);
    kube.forbid('create');
    const out = await send(again, 'forward', {
      'X-Cashu': await mintToken(mint.url, 100),
    });
    kube.allow('create');
    const credit = out.headers['x-paygress-grant']!;
    const used = await send(again, 'forward', {
      Authorization: `Bearer ${credit}`,
    });
    t.equal(used.allowed, true);
    const name = used.headers['x-provisioned-pod'];
    const expiry = () =>
      kube.pods('default').find((p) => p.metadata.name === name)?.metadata
        .annotations?.['paygress.dev/expires-at'];
    const paidUntil = expiry();
    t.ok(paidUntil);

    clock.ms += 200_000;
    for (const protocol of ['forward', 'nginx', 'ext-authz'] as const) {
      const refused = await send(again, protocol, {
        Authorization: `Bearer ${credit}`,
      });
      t.equal(refused.reason, 'PAYGRESS_GRANT_EXPIRED', protocol);
    }
    t.equal(expiry(), paidUntil, 'its pod keeps the time its use bought');

    kube.remove('default', name!);
    await send(again, 'forward', { Authorization: `Bearer ${credit}` });
    t.equal(expiry(), undefined, 'and a deleted one is not made again');
  },
);

t.test(
  'a credit whose failed create made its pod after all gets a pod made when it is used',
  async (t) => {
    const { stack: capped, clock } = await lockedOn(
      t,
      rateConfig(
        '  timeoutMs: 200\n  template: { image: registry.example/workspace:1, maxLifetimeSeconds: 3600 }\n',
      ),
    );

    // The create's answer comes after Paygress gave up; the pod is made,
    // and deleted with the credit: nobody holds its grant yet.
    kube.delay(600, 'POST');
    const out = await send(
      capped,
      'forward',
      { 'X-Cashu': await mintToken(mint.url, 600) },
      { path: '/compute' },
    );
    t.equal(out.reason, 'PAYGRESS_PROVISION_FAILED');
    const credit = out.headers['x-paygress-grant']!;
    await new Promise((resolve) => setTimeout(resolve, 800));
    kube.delay(0);
    const grantId = JSON.parse(
      Buffer.from(credit.split('.')[1]!, 'base64url').toString(),
    ).i as string;
    const name = podNameFor(grantId);
    t.notOk(
      kube.pods('default').some((p) => p.metadata.name === name),
      'the pod the failed create made is deleted',
    );
    // A create that lands only after that delete (as an API server may,
    // within its request timeout) leaves a pod whose cap counts from now.
    const landing = new KubernetesProvisioner({
      kubeConfig: kubeConfigFor(kube),
      namespace: 'default',
      template: {
        image: 'registry.example/workspace:1',
        maxLifetimeSeconds: 3600,
      },
    });
    await landing.ensure(grantId, clock.ms + 3600_000);
    t.ok(kube.pods('default').some((p) => p.metadata.name === name));

    // The payer comes back fifty minutes later: that pod's cap would stop
    // it ten minutes into the hour the credit buys.
    clock.ms += 3000_000;
    const before = kube.requests.length;
    const used = await send(
      capped,
      'forward',
      { Authorization: `Bearer ${credit}` },
      { path: '/compute' },
    );
    t.equal(used.allowed, true);
    t.same(
      kube.requests
        .slice(before)
        .filter((r) => r.method === 'DELETE' || r.method === 'POST')
        .map((r) => r.method),
      ['DELETE', 'POST'],
      'the pod is made anew, its cap counting from now',
    );
    t.ok(
      kube.requests
        .slice(before)
        .some(
          (r) =>
            r.method === 'DELETE' && r.path.includes('gracePeriodSeconds=0'),
        ),
      'the old one deleted at once: nobody held it, and the new one waits for it',
    );
  },
);
