import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import type { Test } from 'tap';
import { KubeConfig } from '@kubernetes/client-node';
import { ProvisionFailedError } from '../../src/core/errors.ts';
import { apiFailure } from '../../src/k8s/kube-call.ts';
import { KubernetesProvisioner } from '../../src/k8s/provisioner.ts';
import type { PodTemplate } from '../../src/k8s/pod-template.ts';
import {
  FakeKubeApiServer,
  kubeConfigFor,
} from '../support/fake-kube-apiserver.ts';

const NS = 'paid';
const HOUR = 3_600_000;
const NOW = Date.UTC(2030, 0, 1);
const clock = { now: () => NOW };
const FAILED = { code: 'PAYGRESS_PROVISION_FAILED' };

async function setup(t: Test, template: PodTemplate = { image: 'app:1' }) {
  const server = await FakeKubeApiServer.start();
  t.teardown(() => server.close());
  const provisioner = new KubernetesProvisioner({
    kubeConfig: kubeConfigFor(server),
    namespace: NS,
    template,
    clock,
    requestTimeoutMs: 300,
  });
  return { server, provisioner };
}

/** Where a call went, for the messages apiFailure words. */
const SITE = {
  namespace: NS,
  server: 'https://10.0.0.1',
  timeoutMs: 300,
  podName: 'paygress-0123',
} as const;

/** A provisioner whose kubeconfig names `server`, with a token. */
function provisionerAt(server: string): KubernetesProvisioner {
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name: 'c', server, skipTLSVerify: true }],
    users: [{ name: 'paygress', token: 'x' }],
    contexts: [{ name: 'c', cluster: 'c', user: 'paygress' }],
    currentContext: 'c',
  });
  return new KubernetesProvisioner({
    kubeConfig,
    namespace: NS,
    template: { image: 'app:1' },
    clock,
  });
}

t.test('an unreachable API rejects at once, and recovers', async (t) => {
  const { server, provisioner } = await setup(t);
  await server.down();

  const err = await provisioner.ensure('g', NOW + HOUR).catch((e) => e);
  t.ok(err instanceof ProvisionFailedError, 'a ProvisionFailedError');
  t.match(
    err.message,
    /could not be reached \(ECONNREFUSED\) while trying to create pod paygress-[0-9a-f]{20} in namespace paid/,
  );
  t.match(err.message, server.url);

  await server.up();
  t.match(await provisioner.ensure('g', NOW + HOUR), { podName: /^paygress-/ });
});

t.test("a server URL's credentials stay out of the message", async (t) => {
  const provisioner = provisionerAt(
    'https://kubeuser:KubeUrlSecret@127.0.0.1:9/?access_token=KubeQuerySecret',
  );
  const err = await provisioner.ensure('g', NOW + HOUR).catch((e) => e);
  t.ok(err instanceof ProvisionFailedError);
  t.notMatch(err.message, /KubeUrlSecret|KubeQuerySecret|kubeuser/);
});

t.test('an answer that cannot be read is not called unreachable', async (t) => {
  // What a proxy in front of the API server might send: not JSON.
  const junk = createServer((_req, res) => {
    res.writeHead(201, { 'content-type': 'application/json' });
    res.end('{not json');
  });
  await new Promise<void>((resolve) => junk.listen(0, '127.0.0.1', resolve));
  t.teardown(() => junk.close());
  const server = `http://127.0.0.1:${(junk.address() as AddressInfo).port}`;
  const provisioner = provisionerAt(server);

  const err = await provisioner.ensure('g', NOW + HOUR).catch((e) => e);
  t.ok(err instanceof ProvisionFailedError, 'a ProvisionFailedError');
  t.match(
    err.message,
    /answered something that could not be read \(.*JSON.*\) while trying to create pod paygress-[0-9a-f]{20} in namespace paid; check for a proxy/,
  );
  t.notMatch(err.message, /could not be reached/);
});

t.test('403 Forbidden names the missing permission', async (t) => {
  const { server, provisioner } = await setup(t);

  server.forbid('create');
  await t.rejects(provisioner.ensure('g', NOW + HOUR), {
    code: 'PAYGRESS_PROVISION_FAILED',
    message:
      /the service account may not create pods in namespace paid \(403 Forbidden: .*cannot create resource "pods"/,
  });
  t.equal(server.pods(NS).length, 0);

  server.allow();
  await provisioner.ensure('g', NOW + HOUR);
  server.forbid('list');
  await t.rejects(provisioner.reap(), {
    message: /may not list pods in namespace paid/,
  });
  server.forbid('patch');
  await t.rejects(provisioner.extend('g', NOW + 2 * HOUR), {
    message: /may not patch pods/,
  });
});

t.test('a 403 blames RBAC only when RBAC refused', async (t) => {
  const site = { ...SITE, verb: 'create' } as const;
  const forbidden = (message: string) =>
    apiFailure(site, {
      code: 403,
      status: { reason: 'Forbidden', message },
    }).message;

  t.match(
    forbidden(
      'pods "paygress-0123" is forbidden: exceeded quota: pods, requested: pods=1, used: pods=10, limited: pods=10',
    ),
    /^namespace paid is at its ResourceQuota \(403 Forbidden: .*\); raise the quota/,
  );
  t.match(
    forbidden(
      'pods "paygress-0123" is forbidden: violates PodSecurity "restricted:latest": privileged',
    ),
    /^an admission policy of namespace paid refused to create pod paygress-0123 .*make the pod template comply/,
  );
  t.match(
    forbidden(
      'pods is forbidden: User "system:serviceaccount:paygress:paygress" cannot create resource "pods" in API group "" in the namespace "paid"',
    ),
    /^the service account may not create pods in namespace paid .*rbac\.yaml$/,
  );
});

t.test('a 500, 502 or 504 answer to a change may have applied', async (t) => {
  const failure = (code: number, verb: 'patch' | 'get' = 'patch') =>
    apiFailure(
      { ...SITE, verb },
      {
        code,
        status: {
          reason: 'Timeout',
          message: 'the server may have completed the request',
        },
      },
    );
  for (const code of [500, 502, 504]) {
    t.equal(failure(code).mayHaveApplied, true, `${code}`);
    t.equal(failure(code, 'get').mayHaveApplied, false, `${code} to a read`);
  }
  for (const code of [400, 404, 409, 422, 429, 503]) {
    t.equal(failure(code).mayHaveApplied, false, `${code}`);
  }
});

t.test('422 Invalid says the template must change', async (t) => {
  // Passes Paygress's own checks but is above the API's limit for the
  // deadline, so only the API server can refuse it.
  const { server, provisioner } = await setup(t, {
    image: 'app:1',
    maxLifetimeSeconds: 3_000_000_000,
  });

  await t.rejects(provisioner.ensure('g', NOW + HOUR), {
    code: 'PAYGRESS_PROVISION_FAILED',
    message:
      /refused the pod as invalid .*\(422 Invalid: Pod "paygress-[0-9a-f]{20}" is invalid: spec\.activeDeadlineSeconds.*\); fix the pod template/,
  });
  t.equal(server.pods(NS).length, 0);
});

t.test(
  'a slow API is abandoned at requestTimeoutMs, not waited for',
  async (t) => {
    const { server, provisioner } = await setup(t);
    server.delay(30_000);

    const started = Date.now();
    await t.rejects(provisioner.ensure('g', NOW + HOUR), {
      code: 'PAYGRESS_PROVISION_FAILED',
      message: /did not answer within 300 ms while trying to create pod/,
    });
    await t.rejects(provisioner.reap(), {
      message: /did not answer within 300 ms while trying to list pods/,
    });
    t.ok(Date.now() - started < 30_000, 'neither call waited for the answer');

    // The create took effect although its answer never came: ensuring again
    // finds the pod instead of failing.
    server.delay(0);
    t.match(await provisioner.ensure('g', NOW + HOUR), {
      podName: /^paygress-/,
    });
    t.equal(server.pods(NS).length, 1);
  },
);

t.test(
  'a released grant loses the pod its failed create made, now or later',
  async (t) => {
    const { server, provisioner } = await setup(t);
    server.delay(600);
    await t.rejects(provisioner.ensure('g', NOW + HOUR), FAILED);
    t.equal(server.pods(NS).length, 1, 'the create took effect all the same');

    await provisioner.release('g', NOW + HOUR);
    server.delay(0);
    await new Promise((r) => setTimeout(r, 700)); // the held answer
    t.equal(server.pods(NS).length, 0, 'deleted at once');

    // A create that lands only after the release (a real API server may
    // apply it late) is deleted by the next sweep, expiry or not; the pod
    // of another grant is left alone.
    const other = new KubernetesProvisioner({
      kubeConfig: kubeConfigFor(server),
      namespace: NS,
      template: { image: 'app:1' },
      clock,
    });
    await other.ensure('g', NOW + HOUR);
    await other.ensure('h', NOW + HOUR);
    t.equal(await provisioner.reap(), 1);
    t.same(
      server.pods(NS).map((p) => p.metadata.name),
      [other.podName('h')],
    );

    // Forgotten once its grant would have expired.
    const later = new KubernetesProvisioner({
      kubeConfig: kubeConfigFor(server),
      namespace: NS,
      template: { image: 'app:1' },
      clock: { now: () => NOW + 2 * HOUR },
    });
    await later.release('old', NOW + HOUR);
    await other.ensure('old', NOW + 3 * HOUR);
    await later.reap(); // deletes h, expired by then
    t.same(
      server.pods(NS).map((p) => p.metadata.name),
      [other.podName('old')],
      'past its expiry a release is dropped',
    );
  },
);

t.test(
  'grants released before a restart lose their pods to the first sweep',
  async (t) => {
    const server = await FakeKubeApiServer.start();
    t.teardown(() => server.close());
    const before = new KubernetesProvisioner({
      kubeConfig: kubeConfigFor(server),
      namespace: NS,
      template: { image: 'app:1' },
      clock,
    });
    // Pods late creates made after their payments were refunded, and one
    // paid for.
    for (const grant of ['g', 'old', 'paid']) {
      await before.ensure(grant, NOW + HOUR);
    }
    const after = new KubernetesProvisioner({
      kubeConfig: kubeConfigFor(server),
      namespace: NS,
      template: { image: 'app:1' },
      clock,
      released: [
        { grantId: 'g', expiresAt: NOW + HOUR },
        { grantId: 'old', expiresAt: NOW - 1 },
      ],
    });
    t.teardown(() => after.stop());
    t.same(await after.start(), { adopted: 2, reaped: 1 });
    t.same(
      server
        .pods(NS)
        .map((p) => p.metadata.name)
        .sort(),
      [before.podName('old'), before.podName('paid')].sort(),
      'a release past its expiry is dropped; the paid pod stays',
    );
  },
);

t.test(
  'a change that went unanswered may have applied; a refused or unsent one did not',
  async (t) => {
    const { server, provisioner } = await setup(t);
    await provisioner.ensure('g', NOW + HOUR);

    // The patch takes effect; its answer comes after the deadline.
    server.delay(600, 'PATCH');
    await t.rejects(provisioner.extend('g', NOW + 2 * HOUR), {
      ...FAILED,
      mayHaveApplied: true,
    });
    server.delay(0);
    t.equal(
      server.pods(NS)[0]?.metadata.annotations?.['paygress.dev/expires-at'],
      new Date(NOW + 2 * HOUR).toISOString(),
      'and it had',
    );

    server.delay(600, 'GET');
    await t.rejects(
      provisioner.extend('g', NOW + 3 * HOUR),
      {
        ...FAILED,
        mayHaveApplied: false,
      },
      'a read changes nothing',
    );
    server.delay(0);
    server.forbid('patch');
    await t.rejects(
      provisioner.extend('g', NOW + 3 * HOUR),
      {
        ...FAILED,
        mayHaveApplied: false,
      },
      'a refusal changed nothing',
    );
    server.allow();
    await server.down();
    await t.rejects(
      provisioner.ensure('h', NOW + HOUR),
      {
        ...FAILED,
        mayHaveApplied: false,
      },
      'a refused connection sent nothing',
    );
    await server.up();
  },
);

t.test('a released grant provisioned again keeps its pod', async (t) => {
  // The refund of its payment never reached the payer, whose retry of
  // the same payment buys the same grant.
  const { server, provisioner } = await setup(t);
  server.delay(600);
  await t.rejects(provisioner.ensure('g', NOW + HOUR), FAILED);
  server.delay(0);
  await provisioner.release('g', NOW + HOUR);
  await provisioner.ensure('g', NOW + HOUR);
  t.equal(await provisioner.reap(), 0, 'the sweep leaves it');
  t.same(
    server.pods(NS).map((p) => p.metadata.name),
    [provisioner.podName('g')],
  );
});

t.test('release never rejects, and the sweep retries it', async (t) => {
  const { server, provisioner } = await setup(t);
  await provisioner.ensure('g', NOW + HOUR);
  server.forbid('delete');
  await provisioner.release('g', NOW + HOUR);
  t.equal(server.pods(NS).length, 1, 'not deleted while forbidden');
  server.allow();
  t.equal(await provisioner.reap(), 1, 'the next sweep deletes it');
  t.equal(server.pods(NS).length, 0);
});

t.test('wrong credentials are reported as such', async (t) => {
  const { server } = await setup(t);
  const kubeConfig = kubeConfigFor(server);
  Object.assign(kubeConfig.users[0]!, { token: 'not-the-token' });
  const provisioner = new KubernetesProvisioner({
    kubeConfig,
    namespace: NS,
    template: { image: 'app:1' },
    clock,
  });

  await t.rejects(provisioner.ensure('g', NOW + HOUR), {
    message: /rejected Paygress's credentials \(401/,
  });
});

t.test('bad arguments are refused without any API call', async (t) => {
  const { server, provisioner } = await setup(t);

  await t.rejects(provisioner.ensure('g', NOW), FAILED);
  await t.rejects(provisioner.ensure('g', Number.NaN), FAILED);
  await t.rejects(provisioner.ensure('', NOW + HOUR), FAILED);
  await t.rejects(provisioner.extend('g', NOW - 1), FAILED);

  t.same(server.requests, []);
});

t.test('a pod of the same name that is not ours is not adopted', async (t) => {
  const { server, provisioner } = await setup(t);
  const { podName } = await provisioner.ensure('g', NOW + HOUR);
  await fetch(`${server.url}/api/v1/namespaces/${NS}/pods/${podName}`, {
    method: 'PATCH',
    headers: {
      authorization: `Bearer ${server.token}`,
      'content-type': 'application/json-patch+json',
    },
    body: JSON.stringify([
      {
        op: 'replace',
        path: '/metadata/labels/paygress.dev~1grant',
        value: 'other',
      },
    ]),
  });

  await t.rejects(provisioner.ensure('g', NOW + 2 * HOUR), {
    message: /exists but is not Paygress's pod for this grant/,
  });

  // Refunded because of it: the pod is still not Paygress's to delete.
  await provisioner.release('g', NOW + 2 * HOUR);
  t.same(
    server.pods(NS).map((p) => p.metadata.name),
    [podName],
    'release leaves it',
  );
  t.equal(await provisioner.reap(), 0, 'and so does the reaper');
  t.equal(server.pods(NS).length, 1);
});

t.test('options are checked up front', async (t) => {
  const { server } = await setup(t);
  const base = {
    kubeConfig: kubeConfigFor(server),
    namespace: NS,
    template: { image: 'app:1' },
  };
  t.throws(
    () => new KubernetesProvisioner({ ...base, namespace: 'Not_Valid' }),
    /`namespace` must be a DNS-1123 label/,
  );
  t.throws(
    () => new KubernetesProvisioner({ ...base, requestTimeoutMs: 0 }),
    /`requestTimeoutMs` must be a positive integer \(ms\)/,
  );
  t.throws(
    () => new KubernetesProvisioner({ ...base, reapIntervalMs: 1.5 }),
    /`reapIntervalMs`/,
  );
  t.throws(
    () => new KubernetesProvisioner({ ...base, template: { image: '' } }),
    /`template.image`/,
  );
  t.same(server.requests, []);
});
