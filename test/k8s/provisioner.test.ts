import t from 'tap';
import type { Test } from 'tap';
import { createHash } from 'node:crypto';
import { KubernetesProvisioner } from '../../src/k8s/provisioner.ts';
import type { PodTemplate } from '../../src/k8s/pod-template.ts';
import {
  FakeKubeApiServer,
  kubeConfigFor,
} from '../support/fake-kube-apiserver.ts';

const NS = 'paid';
/** How long past its expiry the reaper keeps a pod by default. */
const GRACE = 60_000;
const HOUR = 3_600_000;
const template: PodTemplate = {
  image: 'registry.example/notebook:1.4',
  command: ['/bin/serve'],
  args: ['--port', '8888'],
  env: [{ name: 'MODE', value: 'paid' }],
  resources: { limits: { cpu: '500m', memory: '256Mi' } },
  ports: [{ containerPort: 8888, name: 'http' }],
  labels: { team: 'labs' },
  annotations: { 'example.com/owner': 'labs' },
  securityContext: { runAsNonRoot: true },
  maxLifetimeSeconds: 86_400,
};

function fakeClock(start = Date.UTC(2030, 0, 1)) {
  return {
    ms: start,
    now() {
      return this.ms;
    },
  };
}

async function setup(tt: Test, clock = fakeClock()) {
  const server = await FakeKubeApiServer.start();
  tt.teardown(() => server.close());
  const make = () =>
    new KubernetesProvisioner({
      kubeConfig: kubeConfigFor(server),
      namespace: NS,
      template,
      clock,
      requestTimeoutMs: 2000,
    });
  return { server, clock, provisioner: make(), make };
}

const expiryOf = (pod: any) =>
  pod.metadata.annotations['paygress.dev/expires-at'];

t.test('creates the pod from the template with Paygress labels', async (t) => {
  const { server, clock, provisioner } = await setup(t);
  const expiresAt = clock.ms + HOUR;

  const { podName } = await provisioner.ensure('grant-1', expiresAt);

  const hash = createHash('sha256')
    .update('grant-1')
    .digest('hex')
    .slice(0, 20);
  t.equal(podName, `paygress-${hash}`);
  const pod = server.pods(NS)[0]!;
  t.equal(pod.metadata.name, podName);
  t.same(pod.metadata.labels, {
    team: 'labs',
    'app.kubernetes.io/managed-by': 'paygress',
    'paygress.dev/grant': hash,
  });
  t.equal(expiryOf(pod), new Date(expiresAt).toISOString());
  t.equal(pod.metadata.annotations['example.com/owner'], 'labs');
  t.equal(pod.spec.activeDeadlineSeconds, 86_400);
  t.equal(pod.spec.automountServiceAccountToken, false);
  t.match(pod.spec.containers, [
    {
      name: 'main',
      image: template.image,
      command: ['/bin/serve'],
      args: ['--port', '8888'],
      env: [{ name: 'MODE', value: 'paid' }],
      ports: [{ containerPort: 8888 }],
      securityContext: { runAsNonRoot: true },
    },
  ]);
  t.equal(pod.spec.containers.length, 1);
});

t.test('payer-controlled grant ids cannot change the pod', async (t) => {
  const { server, clock, provisioner } = await setup(t);
  const hostile = [
    'x","image":"evil/miner","y":"',
    'Upper/Case ../../ spaces\n{"spec":{}}',
    '🙂'.repeat(300),
  ];

  for (const grantId of hostile) {
    await provisioner.ensure(grantId, clock.ms + HOUR);
  }

  const pods = server.pods(NS);
  t.equal(pods.length, hostile.length);
  for (const pod of pods) {
    t.match(pod.metadata.name, /^paygress-[0-9a-f]{20}$/);
    t.same(
      pod.spec.containers.map((c: any) => c.image),
      [template.image],
    );
    t.notMatch(JSON.stringify(pod), /evil|Upper|🙂/);
  }
});

t.test('ensure is idempotent and never shortens a pod', async (t) => {
  const { server, clock, provisioner } = await setup(t);
  const first = await provisioner.ensure('grant-1', clock.ms + 2 * HOUR);

  const again = await provisioner.ensure('grant-1', clock.ms + HOUR);

  t.same(again, first);
  t.equal(server.pods(NS).length, 1);
  t.equal(
    expiryOf(server.pods(NS)[0]!),
    new Date(clock.ms + 2 * HOUR).toISOString(),
  );
});

t.test('two provisioners racing for one grant give one pod', async (t) => {
  const { server, clock, make } = await setup(t);
  const a = make();
  const b = make();

  const results = await Promise.all([
    a.ensure('grant-race', clock.ms + HOUR),
    b.ensure('grant-race', clock.ms + 2 * HOUR),
    a.ensure('grant-race', clock.ms + HOUR),
  ]);

  t.equal(new Set(results.map((r) => r.podName)).size, 1);
  t.equal(server.pods(NS).length, 1);
  t.equal(
    expiryOf(server.pods(NS)[0]!),
    new Date(clock.ms + 2 * HOUR).toISOString(),
  );
});

t.test(
  'extend moves expiry forward with a merge patch, never back',
  async (t) => {
    const { server, clock, provisioner } = await setup(t);
    await provisioner.ensure('grant-1', clock.ms + HOUR);
    const rv = server.pods(NS)[0]!.metadata.resourceVersion;

    await provisioner.extend('grant-1', clock.ms + 3 * HOUR);
    const patches = server.requests.filter((r) => r.method === 'PATCH');
    t.equal(patches.length, 1);
    t.equal(patches[0]!.contentType, 'application/merge-patch+json');
    t.ok(Number(server.pods(NS)[0]!.metadata.resourceVersion) > Number(rv));

    await provisioner.extend('grant-1', clock.ms + 2 * HOUR);
    t.equal(
      server.requests.filter((r) => r.method === 'PATCH').length,
      1,
      'no patch for an earlier expiry',
    );
    t.equal(
      expiryOf(server.pods(NS)[0]!),
      new Date(clock.ms + 3 * HOUR).toISOString(),
    );
    t.equal(
      server.pods(NS)[0]!.spec.activeDeadlineSeconds,
      86_400,
      'the hard cap stays',
    );
  },
);

t.test('concurrent extends keep the latest expiry', async (t) => {
  const { server, clock, make } = await setup(t);
  const a = make();
  const b = make();
  await a.ensure('grant-1', clock.ms + HOUR);

  await Promise.all([
    a.extend('grant-1', clock.ms + 5 * HOUR),
    b.extend('grant-1', clock.ms + 4 * HOUR),
    a.extend('grant-1', clock.ms + 2 * HOUR),
  ]);

  t.equal(
    expiryOf(server.pods(NS)[0]!),
    new Date(clock.ms + 5 * HOUR).toISOString(),
  );
});

t.test('a pod that has stopped is not extended', async (t) => {
  const { clock, server, provisioner } = await setup(t);
  const { podName } = await provisioner.ensure('capped', clock.ms + HOUR);
  server.setStatus(NS, podName, {
    phase: 'Failed',
    reason: 'DeadlineExceeded',
  });
  await t.rejects(provisioner.extend('capped', clock.ms + 2 * HOUR), {
    code: 'PAYGRESS_PROVISION_FAILED',
    message:
      /has stopped \(Failed, DeadlineExceeded\); a payment cannot start it again/,
  });
  t.equal(
    server.pods(NS)[0]?.metadata.annotations?.['paygress.dev/expires-at'],
    new Date(clock.ms + HOUR).toISOString(),
    'its expiry stays where it was',
  );
});

t.test('a pod the cluster stopped while paid for is made anew', async (t) => {
  // The fake API server stamps pods with the real time, from which the
  // remade pod's lifetime cap counts.
  const { clock, server, provisioner } = await setup(t, fakeClock(Date.now()));
  for (const reason of ['Evicted', 'Terminated', 'OutOfcpu']) {
    const grant = `stopped-${reason}`;
    const { podName } = await provisioner.ensure(grant, clock.ms + HOUR);
    const first = server.pods(NS).find((p) => p.metadata.name === podName);
    server.setStatus(NS, podName, { phase: 'Failed', reason });

    await provisioner.extend(grant, clock.ms + HOUR);
    const again = server.pods(NS).find((p) => p.metadata.name === podName);
    t.not(again?.metadata.uid, first?.metadata.uid, `${reason}: a new pod`);
    t.equal(again?.status?.phase, 'Pending', `${reason}: not stopped`);
    t.equal(
      again?.metadata.annotations?.['paygress.dev/expires-at'],
      new Date(clock.ms + HOUR).toISOString(),
      `${reason}: for the time paid`,
    );
  }
  // A new payment's ensure finds it stopped just the same.
  const { podName } = await provisioner.ensure('new', clock.ms + HOUR);
  server.setStatus(NS, podName, { phase: 'Failed', reason: 'Evicted' });
  await provisioner.ensure('new', clock.ms + 2 * HOUR);
  t.equal(
    server.pods(NS).find((p) => p.metadata.name === podName)?.status?.phase,
    'Pending',
    'ensure makes it anew too',
  );
});

t.test(
  'a pod made anew after an eviction keeps counting its lifetime cap',
  async (t) => {
    // The API server stamps the pod's creation to the second, by its own
    // clock; Paygress's reads a millisecond before that second begins.
    const { clock, server, provisioner } = await setup(
      t,
      fakeClock(Math.floor(Date.now() / 1000) * 1000 - 1),
    );
    const deadline = (name: string) =>
      server.pods(NS).find((p) => p.metadata.name === name)?.spec
        .activeDeadlineSeconds;
    const { podName } = await provisioner.ensure(
      'capped',
      clock.ms + 2 * 86_400_000,
    );
    t.equal(deadline(podName), 86_400, "the template's cap");

    // Evicted after 10 hours: 14 hours of the cap are left.
    clock.ms += 10 * HOUR;
    server.setStatus(NS, podName, { phase: 'Failed', reason: 'Evicted' });
    await provisioner.extend('capped', clock.ms + HOUR);
    // The API stamps its creation to the second.
    const left = deadline(podName)!;
    t.ok(left >= 14 * 3600 - 1 && left <= 14 * 3600, `what is left: ${left}`);

    // Evicted again 13 hours later: still from the first pod's start.
    clock.ms += 13 * HOUR;
    server.setStatus(NS, podName, { phase: 'Failed', reason: 'Evicted' });
    await provisioner.extend('capped', clock.ms + HOUR);
    t.ok(
      deadline(podName)! <= 3600,
      `an hour at most left: ${deadline(podName)}`,
    );

    // Evicted past the cap: no payment starts it again.
    clock.ms += 2 * HOUR;
    server.setStatus(NS, podName, { phase: 'Failed', reason: 'Evicted' });
    await t.rejects(provisioner.extend('capped', clock.ms + HOUR), {
      code: 'PAYGRESS_PROVISION_FAILED',
      message: /after its maxLifetimeSeconds; a payment cannot start it again/,
    });
  },
);

t.test('extend of a grant whose pod is gone makes it anew', async (t) => {
  const { clock, server, provisioner } = await setup(t);
  await provisioner.extend('lost', clock.ms + HOUR);
  const [pod, ...rest] = server.pods(NS);
  t.equal(rest.length, 0);
  t.equal(pod?.metadata.name, provisioner.podName('lost'));
  t.equal(
    pod?.metadata.annotations?.['paygress.dev/expires-at'],
    new Date(clock.ms + HOUR).toISOString(),
    'for the time paid',
  );
});

t.test(
  'the reaper deletes pods a minute after their expiry, on the clock',
  async (t) => {
    const { server, clock, provisioner } = await setup(t);
    await provisioner.ensure('short', clock.ms + HOUR);
    await provisioner.ensure('long', clock.ms + 3 * HOUR);

    t.equal(await provisioner.reap(), 0);
    // A top-up checked before the expiry may still be redeeming.
    clock.ms += HOUR + GRACE - 1;
    t.equal(await provisioner.reap(), 0, 'not a millisecond early');
    clock.ms += 1;
    t.equal(await provisioner.reap(), 1);

    t.same(
      server.pods(NS).map((p) => p.metadata.labels['paygress.dev/grant']),
      [createHash('sha256').update('long').digest('hex').slice(0, 20)],
    );
    const deletes = server.requests.filter((r) => r.method === 'DELETE');
    t.equal(deletes.length, 1);
  },
);

t.test('the reaper leaves pods that are not Paygress pods alone', async (t) => {
  const { server, clock, provisioner } = await setup(t);
  await provisioner.ensure('g', clock.ms + HOUR);
  await fetch(`${server.url}/api/v1/namespaces/${NS}/pods`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${server.token}`,
      'content-type': 'application/json',
    },
    body: JSON.stringify({
      metadata: {
        name: 'bystander',
        labels: { 'app.kubernetes.io/managed-by': 'helm' },
        annotations: { 'paygress.dev/expires-at': '2000-01-01T00:00:00Z' },
      },
      spec: { containers: [{ name: 'c', image: 'busybox' }] },
    }),
  });

  clock.ms += 2 * HOUR;
  t.equal(await provisioner.reap(), 1);
  t.same(
    server.pods(NS).map((p) => p.metadata.name),
    ['bystander'],
  );
});

t.test(
  'the reaper deletes only pods named as Paygress names them',
  async (t) => {
    const { server, clock, provisioner } = await setup(t);
    await provisioner.ensure('g', clock.ms + HOUR);
    clock.ms += 2 * HOUR;
    const deletes = () =>
      server.requests.filter((r) => r.method === 'DELETE').length;

    // A list answer whose item lost its name would otherwise address the
    // whole pods collection (deletecollection on a real API server).
    for (const name of [undefined, '', 'paygress-other']) {
      server.mangleList((items) =>
        items.map((pod) => ({
          ...pod,
          metadata: { ...pod.metadata, name },
        })),
      );
      t.equal(await provisioner.reap(), 0, `name ${String(name)}: none`);
      t.equal(deletes(), 0, `name ${String(name)}: no delete sent`);
    }
    server.mangleList(() => null);
    t.equal(await provisioner.reap(), 0, 'items: null deletes nothing');

    server.mangleList(undefined);
    t.equal(await provisioner.reap(), 1, 'the pod as listed is deleted');
    t.equal(server.pods(NS).length, 0);
  },
);

t.test(
  'a restarted process adopts and reaps pods it did not create',
  async (t) => {
    const { server, clock, make } = await setup(t);
    const before = make();
    await before.ensure('expired', clock.ms + HOUR);
    await before.ensure('alive', clock.ms + 5 * HOUR);
    clock.ms += 2 * HOUR;

    const after = make();
    t.teardown(() => after.stop());
    const report = await after.start();

    t.same(report, { adopted: 1, reaped: 1 });
    t.equal(server.pods(NS).length, 1);
    clock.ms += 3 * HOUR + GRACE;
    t.equal(await after.reap(), 1);
    t.equal(server.pods(NS).length, 0);
  },
);

t.test('the scheduled reaper runs on its interval', async (t) => {
  const server = await FakeKubeApiServer.start();
  t.teardown(() => server.close());
  const clock = fakeClock();
  const provisioner = new KubernetesProvisioner({
    kubeConfig: kubeConfigFor(server),
    namespace: NS,
    template,
    clock,
    reapIntervalMs: 20,
  });
  await provisioner.ensure('g', clock.ms + HOUR);
  await provisioner.start();
  t.teardown(() => provisioner.stop());

  clock.ms += HOUR + GRACE;
  while (server.pods(NS).length > 0)
    await new Promise((r) => setTimeout(r, 10));
  await provisioner.stop();
  const lists = server.requests.filter((r) => r.method === 'GET').length;
  await new Promise((r) => setTimeout(r, 60));
  t.equal(
    server.requests.filter((r) => r.method === 'GET').length,
    lists,
    'stop() ends the schedule',
  );
});

t.test('a reaper delete loses to a concurrent extend', async (t) => {
  const { server, clock, make } = await setup(t);
  const reaper = make();
  await reaper.ensure('g', clock.ms + HOUR);
  clock.ms += HOUR + GRACE;
  // Extend between the reaper's list and its delete: slow the API so the
  // list answer is in flight while the extend lands.
  const extender = make();
  server.delay(100);
  const reaped = reaper.reap();
  await new Promise((r) => setTimeout(r, 20));
  server.delay(0);
  await extender.extend('g', clock.ms + HOUR);

  t.equal(await reaped, 0);
  t.equal(server.pods(NS).length, 1);
});
