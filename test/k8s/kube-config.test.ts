import t from 'tap';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  loadKubeConnection,
  SERVICE_ACCOUNT_DIR,
} from '../../src/k8s/kube-config.ts';

function scratch(t: { teardown(fn: () => void): void }) {
  const dir = mkdtempSync(join(tmpdir(), 'paygress-kc-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const KUBECONFIG_YAML = `apiVersion: v1
kind: Config
clusters: [{ name: c, cluster: { server: 'https://127.0.0.1:6443' } }]
users: [{ name: u, user: { token: t } }]
contexts: [{ name: x, context: { cluster: c, user: u, namespace: shop } }]
current-context: x
`;

t.test('in a pod, the mounted service account is used', async (t) => {
  const root = scratch(t);
  mkdirSync(join(root, SERVICE_ACCOUNT_DIR), { recursive: true });
  writeFileSync(join(root, SERVICE_ACCOUNT_DIR, 'token'), 'sa-token');
  writeFileSync(join(root, SERVICE_ACCOUNT_DIR, 'namespace'), 'paid');

  const conn = loadKubeConnection({
    env: {
      KUBERNETES_SERVICE_HOST: '127.0.0.1',
      KUBERNETES_SERVICE_PORT: '6443',
      KUBECONFIG: '/nonexistent',
    },
    rootPrefix: root,
    home: root,
  });

  t.equal(conn.source, 'in-cluster');
  t.equal(conn.namespace, 'paid');
  t.equal(
    conn.kubeConfig.getCurrentCluster()?.server,
    'https://127.0.0.1:6443',
  );
  t.equal(
    process.env.KUBERNETES_SERVICE_HOST,
    undefined,
    'process.env is left as it was',
  );
});

t.test(
  'the service host without a token falls back to KUBECONFIG',
  async (t) => {
    const dir = scratch(t);
    const file = join(dir, 'config');
    writeFileSync(file, KUBECONFIG_YAML);

    const conn = loadKubeConnection({
      env: { KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBECONFIG: file },
      rootPrefix: dir,
      home: dir,
    });

    t.equal(conn.source, 'kubeconfig');
    t.equal(conn.namespace, 'shop');
  },
);

t.test('~/.kube/config is read when nothing else is set', async (t) => {
  const home = scratch(t);
  mkdirSync(join(home, '.kube'));
  writeFileSync(join(home, '.kube', 'config'), KUBECONFIG_YAML);

  const conn = loadKubeConnection({ env: {}, rootPrefix: home, home });
  t.equal(
    conn.kubeConfig.getCurrentCluster()?.server,
    'https://127.0.0.1:6443',
  );
});

t.test(
  'a kubeconfig that cannot be read is named, none of its lines quoted',
  async (t) => {
    const dir = scratch(t);
    const file = join(dir, 'kc.yaml');
    writeFileSync(
      file,
      `${KUBECONFIG_YAML}users:\n- name: admin\n  user:\n    username: admin\n    password: S3cretKubePassw0rd!\n   token: broken-indent-T0ken\n`,
    );
    const err = (() => {
      try {
        loadKubeConnection({
          env: { KUBECONFIG: file },
          rootPrefix: dir,
          home: dir,
        });
      } catch (e) {
        return e as Error;
      }
      return undefined;
    })();
    t.match(
      err?.message,
      /^the kubeconfig cannot be read \(.+ at line \d+ column \d+\); fix KUBECONFIG/,
    );
    t.notMatch(err?.message, /S3cretKubePassw0rd|T0ken/);
  },
);

t.test('no configuration at all is an error, not localhost:8080', async (t) => {
  const home = scratch(t);
  t.throws(
    () => loadKubeConnection({ env: {}, rootPrefix: home, home }),
    /no Kubernetes connection/,
  );
});
