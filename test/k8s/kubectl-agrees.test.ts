import t from 'tap';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { KubernetesProvisioner } from '../../src/k8s/provisioner.ts';
import {
  FakeKubeApiServer,
  kubeConfigFor,
  writeKubeConfig,
} from '../support/fake-kube-apiserver.ts';

const KUBECTL = '/usr/bin/kubectl';
const run = promisify(execFile);
const NS = 'paid';
const NOW = Date.UTC(2030, 0, 1);

t.test(
  'kubectl, a second real client, agrees with the server',
  {
    skip: existsSync(KUBECTL) ? false : `kubectl not installed at ${KUBECTL}`,
  },
  async (t) => {
    // kubectl withholds bearer tokens on plain HTTP, so it speaks as the
    // anonymous user; Paygress's client still authenticates with the token.
    const server = await FakeKubeApiServer.start({ anonymous: true });
    t.teardown(() => server.close());
    const dir = mkdtempSync(join(tmpdir(), 'paygress-kubectl-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const kubeconfig = writeKubeConfig(server, join(dir, 'config'), NS);
    const kubectl = (...args: string[]) =>
      run(
        KUBECTL,
        ['--kubeconfig', kubeconfig, '--request-timeout', '5s', ...args],
        {
          timeout: 15_000,
          // Loopback only: no proxy, and no cache outside the temp folder.
          env: { PATH: process.env.PATH, HOME: dir, NO_PROXY: '127.0.0.1' },
        },
      );

    const provisioner = new KubernetesProvisioner({
      kubeConfig: kubeConfigFor(server, NS),
      namespace: NS,
      template: { image: 'app:1', labels: { team: 'labs' } },
      clock: { now: () => NOW },
    });
    const one = await provisioner.ensure('grant-1', NOW + 3_600_000);
    const two = await provisioner.ensure('grant-2', NOW + 7_200_000);

    const { stdout } = await kubectl(
      'get',
      'pods',
      '-n',
      NS,
      '-l',
      'app.kubernetes.io/managed-by=paygress,paygress.dev/grant',
      '-o',
      'json',
    );
    const list = JSON.parse(stdout);
    t.same(
      list.items.map((p: any) => p.metadata.name).sort(),
      [one.podName, two.podName].sort(),
    );
    const seen = list.items.find((p: any) => p.metadata.name === one.podName);
    t.equal(
      seen.metadata.annotations['paygress.dev/expires-at'],
      new Date(NOW + 3_600_000).toISOString(),
    );
    t.equal(seen.spec.containers[0].image, 'app:1');

    const none = await kubectl(
      'get',
      'pods',
      '-n',
      NS,
      '-l',
      'team notin (labs)',
      '-o',
      'json',
    );
    t.same(JSON.parse(none.stdout).items, []);

    await kubectl('delete', 'pod', one.podName, '-n', NS);
    t.same(
      server.pods(NS).map((p) => p.metadata.name),
      [two.podName],
    );
    const missing = await kubectl('get', 'pod', one.podName, '-n', NS).catch(
      (e) => e,
    );
    t.match(missing.stderr, `pods "${one.podName}" not found`);

    // A top-up of the deleted pod's grant makes it anew.
    await provisioner.extend('grant-1', NOW + 9_000_000);
    const again = await kubectl(
      'get',
      'pod',
      one.podName,
      '-n',
      NS,
      '-o',
      'json',
    );
    t.equal(
      JSON.parse(again.stdout).metadata.annotations['paygress.dev/expires-at'],
      new Date(NOW + 9_000_000).toISOString(),
    );
  },
);
