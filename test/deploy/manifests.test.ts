/**
 * The shipped manifests: every YAML file under deploy/ parses, every
 * resource validates against the published Kubernetes, Istio and Traefik
 * schemas, and the pieces agree with each other and with Paygress itself
 * (configuration, ports, probes, data directory, RBAC, the Istio wiring).
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, parseAllDocuments } from 'yaml';
import { Container } from 'kubernetes-models/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { ENV_VARS, loadConfig } from '../../src/config.ts';
import { Pricing } from '../../src/core/pricing.ts';
import { startStack } from '../support/stack.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const NODE = join(ROOT, 'node_modules/.bin/node');
const KUBECTL = '/usr/bin/kubectl';

type Obj = Record<string, any>;

const read = (path: string): Obj =>
  parse(readFileSync(join(ROOT, path), 'utf8'));
const docs = (path: string): Obj[] =>
  parseAllDocuments(readFileSync(join(ROOT, path), 'utf8')).map((d) =>
    d.toJS(),
  );

function yamlFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && /\.ya?ml$/.test(e.name))
    .map((e) => relative(ROOT, join(e.parentPath, e.name)))
    .sort();
}

/** The model module publishing the schema of `apiVersion`. */
function modelModule(apiVersion: string): string {
  if (!apiVersion.includes('/')) return `kubernetes-models/${apiVersion}`;
  if (/\.istio\.io\//.test(apiVersion)) {
    return `@kubernetes-models/istio/${apiVersion}`;
  }
  if (/^traefik\.(io|containo\.us)\//.test(apiVersion)) {
    return `@kubernetes-models/traefik/${apiVersion}`;
  }
  return `kubernetes-models/${apiVersion}`;
}

const PATCHES = {
  'ingress-nginx': 'deploy/nginx/ingress-nginx/controller-patch.yaml',
  traefik: 'deploy/traefik/deployment-patch.yaml',
  istio: 'deploy/istio/gateway-patch.yaml',
} as const;

const sidecar = read('deploy/kubernetes/sidecar-container.yaml');
const configMap = read('deploy/kubernetes/configmap.yaml');
const secret = read('deploy/kubernetes/secret.example.yaml');
const embedded = configMap.data['paygress.yaml'] as string;

/** A container spec read from YAML, as the schema model. */
const asContainer = (spec: Obj) =>
  new Container(spec as ConstructorParameters<typeof Container>[0]);

function paygressOf(patch: Obj): Obj {
  const containers = patch.spec.template.spec.containers as Obj[];
  return containers.find((c) => c.name === 'paygress') as Obj;
}

/**
 * The operator's copy of the Secret: the example's placeholder key, which
 * Paygress refuses on purpose, replaced by a key of their own.
 */
const OPERATOR_KEY = 'an-operator-generated-grant-key-0123456789abcdef';
const operatorSecret: Record<string, string> = {
  ...secret.stringData,
  PAYGRESS_GRANT_KEY: OPERATOR_KEY,
};

/** The environment the container gives Paygress, Secret values included. */
function envOf(container: Obj): Record<string, string> {
  const env: Record<string, string> = { ...operatorSecret };
  for (const e of container.env ?? []) env[e.name] = e.value;
  return env;
}

/** The configuration the container runs with: the ConfigMap plus its env. */
function configOf(container: Obj, dir: string) {
  const file = join(dir, 'paygress.yaml');
  writeFileSync(file, embedded);
  return loadConfig({ file, env: envOf(container) });
}

t.test('every YAML file under deploy/ parses', async (t) => {
  const files = yamlFiles('deploy');
  t.ok(files.length >= 10, `found ${files.length} files`);

  for (const file of files) {
    const parsed = parseAllDocuments(readFileSync(join(ROOT, file), 'utf8'));
    const errors = parsed.flatMap((d) => d.errors.map((e) => e.message));
    t.same(errors, [], file);
  }
});

t.test('every resource validates against its published schema', async (t) => {
  let count = 0;
  for (const file of yamlFiles('deploy')) {
    if (file.endsWith('-patch.yaml')) continue; // partial objects, below
    for (const doc of docs(file)) {
      if (!doc?.apiVersion || !doc.kind) continue;
      const mod = await import(modelModule(doc.apiVersion));
      const Model = mod[doc.kind];
      t.ok(Model, `${file}: a schema for ${doc.apiVersion} ${doc.kind}`);
      if (!Model) continue;
      t.doesNotThrow(() => new Model(doc).validate(), `${file}: ${doc.kind}`);
      count++;
    }
  }
  t.ok(count >= 8, `validated ${count} resources`);

  t.doesNotThrow(() => asContainer(sidecar).validate(), 'sidecar');
  const broken = { ...sidecar, ports: [{ containerPort: 'http' }] };
  t.throws(() => asContainer(broken).validate(), 'the check can fail');
});

t.test(
  'each patch adds a valid container equal to the shared one',
  async (t) => {
    for (const [controller, file] of Object.entries(PATCHES)) {
      const [patch, ...rest] = docs(file);
      t.equal(rest.length, 0, `${file}: one document, as kubectl patch takes`);
      t.equal(patch?.kind, 'Deployment', file);

      const container = paygressOf(patch as Obj);
      t.doesNotThrow(() => asContainer(container).validate(), controller);
      t.same(asShared(container), sidecar, `${controller}: same as shared`);
    }
  },
);

/** Undoes the one allowed difference: a moved HTTP port. */
function asShared(container: Obj): Obj {
  const env = (container.env as Obj[]).filter(
    (e) => e.name !== 'PAYGRESS_HTTP_PORT',
  );
  return { ...container, env };
}

t.test(
  'each patch merges into its controller Deployment as kubectl does',
  { skip: existsSync(KUBECTL) ? false : `kubectl not at ${KUBECTL}` },
  async (t) => {
    const dir = t.testdir();
    for (const [controller, file] of Object.entries(PATCHES)) {
      const patch = docs(file)[0] as Obj;
      const base = controllerDeployment(patch.metadata.name);
      writeFileSync(join(dir, 'base.json'), JSON.stringify(base));

      const result = spawnSync(
        KUBECTL,
        ['patch', '--local', '--type', 'strategic', '-o', 'json'].concat([
          '-f',
          join(dir, 'base.json'),
          '--patch-file',
          file,
        ]),
        { cwd: ROOT, encoding: 'utf8', timeout: 20_000 },
      );
      t.equal(result.status, 0, `${controller}: ${result.stderr}`);
      const merged = JSON.parse(result.stdout) as Obj;

      t.doesNotThrow(() => new Deployment(merged).validate(), controller);
      t.same(
        merged.spec.strategy,
        { type: 'Recreate' },
        `${controller}: Recreate, without the rolling settings the API refuses beside it`,
      );
      const pod = merged.spec.template.spec;
      t.same(
        pod.containers.map((c: Obj) => c.name),
        ['paygress', 'proxy'],
        `${controller}: the proxy container is kept`,
      );
      t.same(
        pod.volumes.map((v: Obj) => v.name).sort(),
        ['paygress-config', 'paygress-data', 'paygress-tmp', 'proxy-config'],
        `${controller}: the proxy's volumes are kept`,
      );
    }
  },
);

/** A minimal controller Deployment, as the chart would have made it. */
function controllerDeployment(name: string): Obj {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name },
    spec: {
      // What the API server fills in when a chart sets no strategy.
      strategy: {
        type: 'RollingUpdate',
        rollingUpdate: { maxSurge: '25%', maxUnavailable: '25%' },
      },
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          containers: [{ name: 'proxy', image: 'proxy:1' }],
          volumes: [{ name: 'proxy-config', configMap: { name: name } }],
        },
      },
    },
  };
}

t.test(
  'the ConfigMap holds a configuration check-config accepts',
  async (t) => {
    const dir = t.testdir({ 'paygress.yaml': embedded });
    const check = (env: Record<string, string>) =>
      spawnSync(
        NODE,
        ['bin/paygress.ts', 'check-config', `${dir}/paygress.yaml`],
        {
          cwd: ROOT,
          env: { PATH: process.env.PATH ?? '', ...env },
          encoding: 'utf8',
          timeout: 20_000,
        },
      );

    const ok = check(envOf(sidecar));
    t.equal(ok.status, 0, ok.stderr);
    t.match(
      ok.stdout,
      /ok; http 127\.0\.0\.1:8080, grpc 127\.0\.0\.1:9001, admin 0\.0\.0\.0:9090, /,
    );
    t.notOk(ok.stdout.includes(OPERATOR_KEY));

    const placeholder = check({ ...envOf(sidecar), ...secret.stringData });
    t.equal(placeholder.status, 2, "the example's placeholder key is refused");

    const noSecret = check({});
    t.equal(noSecret.status, 2, 'the grant key must come from the Secret');
    t.match(noSecret.stderr, /grants\.key/);
  },
);

t.test('the Secret holds only variables Paygress reads', async (t) => {
  const known = new Set(ENV_VARS.map(([name]) => name));
  for (const key of Object.keys(secret.stringData)) {
    t.ok(known.has(key), key);
  }
  t.ok('PAYGRESS_GRANT_KEY' in secret.stringData);
});

t.test(
  'auth listeners on loopback where the controller calls them',
  async (t) => {
    const dir = t.testdir();
    const calls: Record<keyof typeof PATCHES, URL> = {
      'ingress-nginx': new URL(
        docs('deploy/nginx/ingress-nginx/ingress-snippets.yaml')[0]!.metadata
          .annotations['nginx.ingress.kubernetes.io/auth-url'],
      ),
      traefik: new URL(
        docs('deploy/traefik/middleware.yaml')[0]!.spec.forwardAuth.address,
      ),
      istio: new URL(
        `grpc://${docs('deploy/istio/service-entry.yaml')[0]!.spec.endpoints[0].address}:${docs('deploy/istio/mesh-config.yaml')[0]!.spec.meshConfig.extensionProviders[0].envoyExtAuthzGrpc.port}`,
      ),
    };
    for (const [controller, file] of Object.entries(PATCHES)) {
      const container = paygressOf(docs(file)[0] as Obj);
      const config = configOf(container, dir);
      t.equal(config.http.host, '127.0.0.1', `${controller}: http`);
      t.equal(config.grpc.host, '127.0.0.1', `${controller}: grpc`);

      const call = calls[controller as keyof typeof PATCHES];
      const listener = call.protocol === 'grpc:' ? config.grpc : config.http;
      t.equal(call.hostname, listener.host, `${controller} calls its host`);
      t.equal(Number(call.port), listener.port, `${controller} calls its port`);
    }
  },
);

t.test(
  'the only container port is the admin listener, on the pod IP',
  async (t) => {
    const dir = t.testdir();
    for (const [name, container] of [
      ['shared', sidecar] as const,
      ...Object.entries(PATCHES).map(
        ([controller, file]) =>
          [controller, paygressOf(docs(file)[0] as Obj)] as const,
      ),
    ]) {
      const { admin } = configOf(container, dir);
      t.same(admin, { host: '0.0.0.0', port: 9090 }, name);
      t.same(
        (container.ports as Obj[]).map((p) => [p.name, p.containerPort]),
        [['paygress-admin', admin?.port]],
        `${name}: nothing on loopback is declared`,
      );
    }
  },
);

t.test(
  "ingress-nginx's NetworkPolicy opens the admin port to monitoring only",
  async (t) => {
    const [policy] = docs('deploy/nginx/ingress-nginx/networkpolicy.yaml');
    const spec = (policy as Obj).spec as Obj;
    const patch = docs(PATCHES['ingress-nginx'])[0] as Obj;
    t.equal(
      (policy as Obj).metadata.namespace,
      patch.metadata.namespace,
      "the controller's namespace",
    );
    const { admin } = configOf(sidecar, t.testdir());
    const rules = spec.ingress as Obj[];
    const open = rules.filter((r) => r.from === undefined);
    const monitoring = rules.filter((r) => r.from !== undefined);
    const ports = (list: Obj[]) =>
      list.flatMap((r) => (r.ports as Obj[]).map((p) => p.port));
    t.notOk(ports(open).includes(admin?.port), 'not open to every pod');
    t.ok(ports(monitoring).includes(admin?.port), 'open to monitoring');
    t.same(
      monitoring.flatMap((r) => r.from as Obj[]),
      [
        {
          namespaceSelector: {
            matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' },
          },
        },
      ],
    );
  },
);

t.test('probes ask paths the admin listener serves', async (t) => {
  const live = sidecar.livenessProbe.httpGet;
  const ready = sidecar.readinessProbe.httpGet;
  const started = sidecar.startupProbe.httpGet;
  t.same([live.path, live.port], ['/healthz', 'paygress-admin']);
  t.same([ready.path, ready.port], ['/readyz', 'paygress-admin']);
  t.same([started.path, started.port], ['/healthz', 'paygress-admin']);
  // Settling at a mint that does not answer takes about three timeouts
  // per mint before the admin listener opens; the probe waits for two
  // such mints and more.
  const { periodSeconds, failureThreshold } = sidecar.startupProbe;
  const timeoutMs = parse(embedded).mint.timeoutMs as number;
  t.ok(periodSeconds * failureThreshold * 1000 >= 2 * 3 * timeoutMs);
  for (const [controller, file] of Object.entries(PATCHES)) {
    const container = paygressOf(docs(file)[0] as Obj);
    t.same(container.startupProbe, sidecar.startupProbe, controller);
  }

  const stack = await startStack({
    env: { PAYGRESS_ADMIN_HOST: '127.0.0.1', PAYGRESS_ADMIN_PORT: '0' },
  });
  t.teardown(() => stack.close());
  const admin = `http://127.0.0.1:${stack.app.adminPort}`;
  for (const path of [live.path, ready.path, '/metrics', '/auth/forward']) {
    const res = await fetch(`${admin}${path}`);
    await res.body?.cancel();
    t.equal(res.status, path === '/auth/forward' ? 404 : 200, path);
  }
});

t.test('every sidecar mounts the data volume at the data dir', async (t) => {
  const dir = t.testdir();
  t.equal(parse(embedded).dataDir, '/var/lib/paygress', 'ConfigMap');
  t.equal(envOf(sidecar).PAYGRESS_DATA_DIR, '/var/lib/paygress', 'env');

  for (const [controller, file] of Object.entries(PATCHES)) {
    const patch = docs(file)[0] as Obj;
    const container = paygressOf(patch);
    const { dataDir } = configOf(container, dir);
    const mount = (container.volumeMounts as Obj[]).find(
      (m) => m.mountPath === dataDir,
    );
    t.equal(mount?.name, 'paygress-data', `${controller}: mounted`);
    t.notOk(mount?.readOnly, `${controller}: writable`);

    const volumes = patch.spec.template.spec.volumes as Obj[];
    const data = volumes.find((v) => v.name === mount?.name);
    t.equal(data?.persistentVolumeClaim?.claimName, 'paygress-data');
    const tmp = volumes.find((v) => v.name === 'paygress-tmp');
    t.ok(tmp?.emptyDir, `${controller}: /tmp is an emptyDir`);
  }
});

t.test(
  'every Deployment that mounts the wallet volume is replaced, not rolled',
  async (t) => {
    // The claim is ReadWriteOnce and Paygress locks the data directory: a
    // rolling update's new pod cannot start beside the old one, which is
    // kept until the new one is ready. Recreate stops the old one first.
    const found: string[] = [];
    for (const file of yamlFiles('deploy')) {
      for (const doc of docs(file)) {
        if (doc?.kind !== 'Deployment') continue;
        const pod = doc.spec?.template?.spec ?? {};
        const wallet = new Set(
          ((pod.volumes ?? []) as Obj[])
            .filter(
              (v) =>
                v.name === 'paygress-data' ||
                v.persistentVolumeClaim?.claimName === 'paygress-data',
            )
            .map((v) => v.name as string),
        );
        const mounts = ((pod.containers ?? []) as Obj[]).some((c) =>
          ((c.volumeMounts ?? []) as Obj[]).some(
            (m) => m.name === 'paygress-data' || wallet.has(m.name),
          ),
        );
        if (!mounts) continue;
        found.push(file);
        t.same(
          doc.spec.strategy,
          { type: 'Recreate', rollingUpdate: null },
          `${file}: Recreate, the controller's rolling settings removed`,
        );
      }
    }
    t.same(found.sort(), Object.values(PATCHES).sort(), 'every patch');
  },
);

t.test(
  'the wallet pod runs what the sidecar runs, on the same volume',
  async (t) => {
    const pod = read('deploy/kubernetes/wallet-pod.yaml');
    const [container] = pod.spec.containers as Obj[];
    for (const field of ['image', 'env', 'envFrom', 'volumeMounts']) {
      t.same(container![field], sidecar[field], field);
    }
    t.same(
      container!.securityContext.runAsUser,
      sidecar.securityContext.runAsUser,
    );
    t.equal(container!.securityContext.readOnlyRootFilesystem, true);
    const volumes = pod.spec.volumes as Obj[];
    t.equal(
      volumes.find((v) => v.name === 'paygress-data')?.persistentVolumeClaim
        ?.claimName,
      'paygress-data',
    );
    t.equal(
      volumes.find((v) => v.name === 'paygress-config')?.configMap?.name,
      configMap.metadata.name,
    );
  },
);

t.test('the sidecar is locked down', async (t) => {
  const sc = sidecar.securityContext;
  t.equal(sc.readOnlyRootFilesystem, true);
  t.equal(sc.runAsNonRoot, true);
  t.equal(sc.runAsUser, 10001, 'the uid the Dockerfile creates');
  t.equal(sc.allowPrivilegeEscalation, false);
  t.same(sc.capabilities.drop, ['ALL']);
  t.ok(sidecar.resources.limits.memory && sidecar.resources.limits.cpu);
  t.ok(
    /^USER 10001:10001$/m.test(readFileSync(join(ROOT, 'Dockerfile'), 'utf8')),
  );

  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  t.equal(sidecar.image.split(':').pop(), pkg.version, 'image tag');
});

t.test('shutdown fits the default termination grace period', async (t) => {
  const [cmd, seconds] = sidecar.lifecycle.preStop.exec.command;
  t.equal(cmd, 'sleep');
  const { shutdownGraceMs } = parse(embedded);
  // 30 s is Kubernetes's default and the smallest the three controllers'
  // own manifests use; past it the kubelet kills Paygress mid-request.
  t.ok(Number(seconds) + shutdownGraceMs / 1000 < 30);
});

t.test('the Role grants pod verbs only', async (t) => {
  const role = docs('deploy/kubernetes/rbac.yaml').find(
    (d) => d.kind === 'Role',
  );
  t.ok(role);
  for (const rule of role?.rules ?? []) {
    t.same(rule.apiGroups, [''], 'core group only');
    t.same(rule.resources, ['pods'], 'pods only');
    t.notOk(rule.verbs.includes('*'), 'no wildcard verb');
  }
  t.equal(parse(embedded).provisioning.namespace, role?.metadata.namespace);
});

t.test(
  'the Istio provider, ServiceEntry and policy fit together',
  async (t) => {
    const mesh = docs('deploy/istio/mesh-config.yaml')[0] as Obj;
    const [provider] = mesh.spec.meshConfig.extensionProviders as Obj[];
    const grpc = provider?.envoyExtAuthzGrpc;
    const entry = docs('deploy/istio/service-entry.yaml')[0] as Obj;
    const policy = docs('deploy/istio/authorization-policy.yaml')[0] as Obj;
    const config = parse(embedded);

    t.equal(grpc.failOpen, false, 'fails closed');
    t.ok(parseFloat(grpc.timeout) * 1000 > config.mint.timeoutMs);
    t.same(entry.spec.hosts, [grpc.service]);
    t.same(entry.spec.endpoints, [{ address: '127.0.0.1' }]);
    t.equal(entry.spec.ports[0].number, grpc.port);
    t.equal(grpc.port, config.grpc.port);
    t.equal(policy.spec.action, 'CUSTOM');
    t.equal(policy.spec.provider.name, provider?.name);

    // Fail closed: every request goes to Paygress. A list of free paths
    // (`notPaths: [/public/*]`) let `/public/..%2Fpremium` skip it, which
    // Istio's default normalization leaves undecoded and an upstream that
    // decodes %2F serves as /premium; Paygress refuses it.
    t.same(policy.spec.rules, [{}], 'one rule that matches every request');
    const loaded = configOf(sidecar, t.testdir());
    const pricing = new Pricing(loaded.pricing.rules, loaded.pricing.default, {
      trustedAmountHeader: false,
      mints: loaded.mints,
    });
    t.equal(pricing.route(request('/public/x')).charge.kind, 'free');
  },
);

function request(path: string) {
  return {
    protocol: 'ext-authz',
    method: 'GET',
    scheme: 'https',
    host: 'app.example.com',
    path,
    query: '',
    headers: {},
    clientAddress: '',
    requestId: 'r',
  } as const;
}
