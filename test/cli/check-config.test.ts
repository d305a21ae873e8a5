import t from 'tap';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const NODE = `${ROOT}node_modules/.bin/node`;

/** Runs the command as operators do, with only the environment given. */
function checkConfig(args: string[], env: Record<string, string> = {}) {
  const result = spawnSync(NODE, ['src/cli/check-config.ts', ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', ...env },
    encoding: 'utf8',
    timeout: 20_000,
  });
  return { code: result.status, out: result.stdout, err: result.stderr };
}

const GRANT_KEY = 'a-grant-key-of-the-operators-own-0123456789';

t.test('a valid file exits 0 with a one-line summary', async (t) => {
  const result = checkConfig(['paygress.example.yaml'], {
    PAYGRESS_GRANT_KEY: GRANT_KEY,
  });

  t.equal(result.code, 0);
  t.equal(result.err, '');
  t.equal(
    result.out,
    'paygress.example.yaml: ok; http 127.0.0.1:8080, grpc 127.0.0.1:9001, ' +
      'mints 2, 3 pricing rules, default 1000 sat, provisioning off\n',
  );
  t.notOk(result.out.includes(GRANT_KEY), 'the grant key is not printed');

  const admin = checkConfig(['paygress.example.yaml'], {
    PAYGRESS_GRANT_KEY: GRANT_KEY,
    PAYGRESS_HTTP_HOST: '127.0.0.1',
    PAYGRESS_GRPC_HOST: '::1',
    PAYGRESS_ADMIN_HOST: '::',
    PAYGRESS_ADMIN_PORT: '9090',
  });
  t.match(
    admin.out,
    /: ok; http 127\.0\.0\.1:8080, grpc \[::1\]:9001, admin \[::\]:9090, mints 2,/,
    'an admin listener is named, IPv6 addresses in brackets',
  );
});

t.test('the example needs a grant key of your own', async (t) => {
  const missing = checkConfig(['paygress.example.yaml']);
  t.equal(missing.code, 2);
  t.match(
    missing.err,
    /grants\.key: missing, .*: set PAYGRESS_GRANT_KEY, or grants\.key in the file/,
  );

  const placeholder = checkConfig(['paygress.example.yaml'], {
    PAYGRESS_GRANT_KEY: 'replace-me-with-a-long-random-secret-of-32-bytes',
  });
  t.equal(placeholder.code, 2);
  t.match(placeholder.err, /not an example's placeholder/);
  t.notMatch(placeholder.err, /replace-me-with/, 'the key is not printed');
});

t.test('an invalid file exits 2 with every problem, one a line', async (t) => {
  const dir = t.testdir({
    'bad.yaml': [
      'mints: [http://mint.example.com]',
      'http: { port: -1 }',
      'grants: { key: too-short-secret }',
      'colour: blue',
    ].join('\n'),
  });

  const result = checkConfig([`${dir}/bad.yaml`]);
  t.equal(result.code, 2);
  t.equal(result.out, '');
  t.same(result.err.trimEnd().split('\n').sort(), [
    'colour: unknown key, expected one of http, grpc, admin, dataDir, logLevel, logDecisions, logRefusalLimit, secp256k1, mints, mint, tokens, replay, pricing, grants, provisioning, wallet, shutdownGraceMs, devMint',
    'grants.key: a 16-byte secret is not a secret of at least 32 bytes',
    'http.port: -1 is not an integer from 0 to 65535 (TCP port)',
    'mints[0].url: "http://mint.example.com" is not an https URL (http is allowed for loopback only, or anywhere with mint.allowHttp)',
  ]);
  t.notOk(result.err.includes('too-short-secret'));
});

t.test('risky but valid settings pass with a warning each', async (t) => {
  const dir = t.testdir({
    'risky.yaml': [
      'mints: [https://mint.example.com]',
      'pricing:',
      '  rules:',
      '    - name: session',
      '      match: { path: /session }',
      '      rate: { amount: 1, unit: sat, perSeconds: 60, maxSeconds: 7200 }',
      'provisioning:',
      '  enabled: true',
      '  template:',
      '    image: app:1',
      '    maxLifetimeSeconds: 3600',
      '    securityContext: { privileged: true }',
    ].join('\n'),
  });
  const result = checkConfig([`${dir}/risky.yaml`], {
    PAYGRESS_GRANT_KEY: GRANT_KEY,
  });
  t.equal(result.code, 0);
  t.match(result.out, /risky\.yaml: ok; .*pods in default/);
  t.same(result.err.trimEnd().split('\n'), [
    "warning: provisioning.template.securityContext.privileged: a privileged container controls its node (in every payer's pod)",
    "warning: provisioning.template.maxLifetimeSeconds (3600 s) is shorter than rule session's rate.maxSeconds (7200 s): a payer can buy time their pod will not live",
  ]);
});

t.test('environment variables are applied as at startup', async (t) => {
  const dir = t.testdir({ 'min.yaml': 'logLevel: warn\n' });

  const without = checkConfig([`${dir}/min.yaml`]);
  t.equal(without.code, 2);
  t.match(
    without.err,
    /^mints: missing, expected a list of at least one mint URL \(or devMint: true\)/,
  );

  const withMint = checkConfig([`${dir}/min.yaml`], {
    PAYGRESS_MINTS: 'https://mint.example.com',
    PAYGRESS_HTTP_PORT: '8181',
  });
  t.equal(withMint.code, 0);
  t.match(withMint.out, /http 0\.0\.0\.0:8181, .*mints 1,/);
});

t.test(
  'a pod template of the wrong shape is one problem, not a crash',
  async (t) => {
    const dir = t.testdir({
      'caps.yaml': [
        'mints: [https://mint.example.com]',
        'provisioning:',
        '  enabled: true',
        '  template:',
        '    image: app:1',
        '    securityContext: { capabilities: { add: SYS_ADMIN } }',
      ].join('\n'),
    });
    const result = checkConfig([`${dir}/caps.yaml`], {
      PAYGRESS_GRANT_KEY: GRANT_KEY,
    });
    t.equal(result.code, 2);
    t.same(result.err.trimEnd().split('\n'), [
      'provisioning.template: `provisioning.template.securityContext.capabilities.add` must be a list of strings',
    ]);
  },
);

t.test('a YAML ordered map or set is refused, not read as empty', async (t) => {
  const dir = t.testdir({
    'omap.yaml': [
      'mints: [https://mint.example.com]',
      'http: !!omap',
      '  - host: 127.0.0.1',
      '  - port: 8181',
    ].join('\n'),
  });
  const result = checkConfig([`${dir}/omap.yaml`]);
  t.equal(result.code, 2);
  t.match(
    result.err,
    /^http: an ordered mapping \(!!omap or !!pairs\) is not a mapping/m,
  );
});

t.test(
  'variables that look like settings and are not are warned of',
  async (t) => {
    const dir = t.testdir({
      'ns.yaml': [
        'mints: [https://mint.example.com]',
        'provisioning: { namespace: payers }',
      ].join('\n'),
    });
    const result = checkConfig([`${dir}/ns.yaml`], {
      PAYGRESS_HTTP_HOSTS: '127.0.0.1',
      PAYGRESS_WIDGETS: 'on',
      // What Kubernetes sets for a Service named paygress: no warning.
      PAYGRESS_SERVICE_HOST: '10.0.0.7',
      PAYGRESS_PORT_9090_TCP_ADDR: '10.0.0.7',
      POD_NAMESPACE: 'ingress',
    });
    t.equal(result.code, 0);
    t.same(result.err.trimEnd().split('\n'), [
      'warning: PAYGRESS_HTTP_HOSTS is not a Paygress setting and is ignored (did you mean PAYGRESS_HTTP_HOST?)',
      'warning: PAYGRESS_WIDGETS is not a Paygress setting and is ignored',
      "warning: POD_NAMESPACE (ingress) overrides provisioning.namespace (payers) from the file: payers' pods go to ingress; unset it if it names Paygress's own namespace",
    ]);
  },
);

t.test('the shipped ConfigMap is named for what it is', async (t) => {
  const result = checkConfig([`${ROOT}deploy/kubernetes/configmap.yaml`]);
  t.equal(result.code, 2);
  t.match(
    result.err,
    /is a Kubernetes ConfigMap, not a Paygress configuration: check the paygress\.yaml in its data \(deploy\/kubernetes\/README\.md shows how/,
  );
});

t.test('a missing file or argument exits 2', async (t) => {
  const missing = checkConfig(['does-not-exist.yaml']);
  t.equal(missing.code, 2);
  t.match(missing.err, /does-not-exist\.yaml: cannot be read \(ENOENT\)/);

  const usage = checkConfig([]);
  t.equal(usage.code, 2);
  t.equal(usage.err, 'usage: paygress check-config <file>\n');
});
