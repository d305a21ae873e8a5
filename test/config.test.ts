import t, { type Test } from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ConfigError,
  ENV_VARS,
  loadConfig,
  normaliseMintUrl,
} from '../src/config.ts';
import { Pricing } from '../src/core/pricing.ts';

const MINT = { PAYGRESS_MINTS: 'https://mint.example.com' };
const KEY = 'k'.repeat(32);

function problemsOf(fn: () => unknown): readonly string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

function yamlFile(t: Test, text: string): string {
  const dir = t.testdir({ 'paygress.yaml': text });
  return `${dir}/paygress.yaml`;
}

t.test('defaults fill every setting and the result is frozen', async (t) => {
  const config = loadConfig({ env: MINT });

  t.same(config.http, { host: '0.0.0.0', port: 8080, maxConnections: 1024 });
  t.same(config.grpc, { host: '0.0.0.0', port: 9001, maxConnections: 1024 });
  t.equal(config.admin, undefined, 'no admin listener');
  t.equal(config.dataDir, './.data');
  t.equal(config.logLevel, 'info');
  t.equal(config.logRefusalLimit, 50);
  t.same(config.mints, [{ url: 'https://mint.example.com', units: ['sat'] }]);
  t.same(config.mint, { timeoutMs: 5000, allowHttp: false });
  t.same(config.tokens, { maxLength: 16384, requireDleq: false });
  t.equal(config.replay.cacheSize, 1_000_000);
  t.same(config.pricing, {
    default: { amount: 1000, unit: 'sat' },
    trustedAmountHeader: false,
    rules: [],
  });
  t.same(config.grants, { previousKeys: [], cookieName: 'paygress_grant' });
  t.same(config.provisioning, {
    enabled: false,
    namespace: 'default',
    timeoutMs: 5000,
  });
  t.equal(config.shutdownGraceMs, 10_000);
  t.equal(config.devMint, false);
  t.ok(Object.isFrozen(config) && Object.isFrozen(config.http));
  t.ok(Object.isFrozen(config.mints[0]?.units));
});

t.test('a configuration without any mint is refused', async (t) => {
  const problems = problemsOf(() => loadConfig({ env: {} }));
  t.match(problems, [
    /^mints: missing, expected a list of at least one mint URL \(or devMint: true\)/,
  ]);
  t.equal(loadConfig({ env: { PAYGRESS_DEV_MINT: 'true' } }).devMint, true);
});

t.test('the file is read and the environment wins over it', async (t) => {
  const file = yamlFile(
    t,
    [
      'http: { host: 127.0.0.1, port: 8000 }',
      'logLevel: debug',
      'mints: [https://file-mint.example.com]',
    ].join('\n'),
  );

  const fromFile = loadConfig({ file, env: {} });
  t.same(fromFile.http, {
    host: '127.0.0.1',
    port: 8000,
    maxConnections: 1024,
  });
  t.equal(fromFile.logLevel, 'debug');

  const env = {
    PAYGRESS_HTTP_PORT: '9000',
    PAYGRESS_MINTS: 'https://e.example',
  };
  const both = loadConfig({ file, env });
  t.same(
    both.http,
    { host: '127.0.0.1', port: 9000, maxConnections: 1024 },
    'host kept, port set',
  );
  t.equal(both.logLevel, 'debug');
  t.same(
    both.mints.map((m) => m.url),
    ['https://e.example'],
  );
});

t.test('PAYGRESS_CONFIG names the file when none is passed', async (t) => {
  const file = yamlFile(t, 'devMint: true\n');
  t.equal(loadConfig({ env: { PAYGRESS_CONFIG: file } }).devMint, true);
});

t.test('every environment variable sets its key', async (t) => {
  const config = loadConfig({
    env: {
      PAYGRESS_HTTP_HOST: '127.0.0.1',
      PAYGRESS_HTTP_PORT: '1',
      PAYGRESS_HTTP_MAX_CONNECTIONS: '64',
      PAYGRESS_GRPC_HOST: '::1',
      PAYGRESS_GRPC_PORT: '2',
      PAYGRESS_GRPC_MAX_CONNECTIONS: '8',
      PAYGRESS_ADMIN_HOST: '10.0.0.7',
      PAYGRESS_ADMIN_PORT: '3',
      PAYGRESS_DATA_DIR: '/var/lib/paygress',
      PAYGRESS_LOG_LEVEL: 'warn',
      PAYGRESS_LOG_REFUSAL_LIMIT: '0',
      PAYGRESS_MINTS: 'https://a.example=sat,usd; http://localhost:3338',
      PAYGRESS_MINT_TIMEOUT_MS: '750',
      PAYGRESS_MINT_ALLOW_HTTP: 'yes',
      PAYGRESS_MAX_TOKEN_LENGTH: '4096',
      PAYGRESS_REQUIRE_DLEQ: 'TRUE',
      PAYGRESS_REPLAY_CACHE_SIZE: '10',
      PAYGRESS_DEFAULT_UNIT: 'usd',
      PAYGRESS_TRUST_REQUIRED_AMOUNT_HEADER: '1',
      PAYGRESS_GRANT_KEY: KEY,
      PAYGRESS_GRANT_PREVIOUS_KEYS: `${'a'.repeat(32)}, ${'b'.repeat(40)}`,
      PAYGRESS_GRANT_COOKIE: 'pg',
      PAYGRESS_POD_IMAGE: 'ghcr.io/example/app:1',
      PAYGRESS_SHUTDOWN_GRACE_MS: '0',
      PAYGRESS_DEV_MINT: 'off',
    },
  });

  t.same(config.http, { host: '127.0.0.1', port: 1, maxConnections: 64 });
  t.same(config.grpc, { host: '::1', port: 2, maxConnections: 8 });
  t.same(config.admin, { host: '10.0.0.7', port: 3 });
  t.equal(config.dataDir, '/var/lib/paygress');
  t.equal(config.logLevel, 'warn');
  t.equal(config.logRefusalLimit, 0, '0 lifts the limit');
  t.same(config.mints, [
    { url: 'https://a.example', units: ['sat', 'usd'] },
    { url: 'http://localhost:3338', units: ['sat'] },
  ]);
  t.same(config.mint, { timeoutMs: 750, allowHttp: true });
  t.same(config.tokens, { maxLength: 4096, requireDleq: true });
  t.equal(config.replay.cacheSize, 10);
  t.same(config.pricing.default, { amount: 1000, unit: 'usd' });
  t.equal(config.pricing.trustedAmountHeader, true);
  t.same(config.grants, {
    key: KEY,
    previousKeys: ['a'.repeat(32), 'b'.repeat(40)],
    cookieName: 'pg',
  });
  t.equal(config.provisioning.template?.image, 'ghcr.io/example/app:1');
  t.equal(config.shutdownGraceMs, 0);
  t.equal(config.devMint, false);
});

t.test('legacy variables keep working', async (t) => {
  const config = loadConfig({
    env: {
      ...MINT,
      DEFAULT_PAYMENT_AMOUNT: '21',
      ENABLE_POD_PROVISIONING: 'true',
      POD_NAMESPACE: 'paid-pods',
      PAYGRESS_POD_IMAGE: 'nginx:1.27',
    },
  });

  t.same(config.pricing.default, { amount: 21, unit: 'sat' });
  t.equal(config.provisioning.enabled, true);
  t.equal(config.provisioning.namespace, 'paid-pods');
});

t.test('an admin listener is there only with a port', async (t) => {
  t.match(
    problemsOf(() =>
      loadConfig({ env: { ...MINT, PAYGRESS_ADMIN_HOST: '::' } }),
    ),
    [
      /^admin\.port: missing, expected a port as well as admin\.host \(PAYGRESS_ADMIN_HOST\)/,
    ],
    'a host alone would start nothing: refused',
  );

  const file = yamlFile(t, 'admin: { port: 9090 }\n');
  t.same(loadConfig({ file, env: MINT }).admin, {
    host: '0.0.0.0',
    port: 9090,
  });
  t.same(
    loadConfig({ file, env: { ...MINT, PAYGRESS_HTTP_HOST: '127.0.0.1' } })
      .admin,
    { host: '127.0.0.1', port: 9090 },
    "the host defaults to the HTTP listener's",
  );
  t.same(
    loadConfig({ env: { ...MINT, PAYGRESS_ADMIN_PORT: '0' } }).admin,
    { host: '0.0.0.0', port: 0 },
    'port 0 picks a free one',
  );

  t.match(
    problemsOf(() =>
      loadConfig({ env: { ...MINT, PAYGRESS_ADMIN_PORT: '70000' } }),
    ),
    [/^admin\.port \(PAYGRESS_ADMIN_PORT\): 70000 is not an integer from 0/],
  );
  t.match(
    problemsOf(() =>
      loadConfig({ file: yamlFile(t, 'admin: { prot: 9090 }\n'), env: MINT }),
    ),
    [/^admin\.prot: unknown key, expected one of host, port/],
  );
});

t.test('an IPv6 host is written without brackets', async (t) => {
  t.equal(
    loadConfig({ env: { ...MINT, PAYGRESS_GRPC_HOST: '::1' } }).grpc.host,
    '::1',
  );
  t.match(
    problemsOf(() =>
      loadConfig({ env: { ...MINT, PAYGRESS_HTTP_HOST: '[::1]' } }),
    ),
    [
      /^http\.host \(PAYGRESS_HTTP_HOST\): "\[::1\]" is not a host name or IP address without a port \(IPv6 without brackets, e\.g\. ::1\)$/,
    ],
    'refused where it would only fail to bind at start-up',
  );
});

t.test('no two listeners share a port', async (t) => {
  t.match(
    problemsOf(() =>
      loadConfig({ env: { ...MINT, PAYGRESS_ADMIN_PORT: '8080' } }),
    ),
    [
      /^admin\.port \(PAYGRESS_ADMIN_PORT\): 8080 is not a free port \(http\.port has it\)$/,
    ],
  );
  t.match(
    problemsOf(() =>
      loadConfig({ env: { ...MINT, PAYGRESS_GRPC_PORT: '8080' } }),
    ),
    [
      /^grpc\.port \(PAYGRESS_GRPC_PORT\): 8080 is not a free port \(http\.port has it\)$/,
    ],
  );
  const fromFile = yamlFile(t, 'admin: { port: 9090 }\n');
  t.match(
    problemsOf(() =>
      loadConfig({
        file: fromFile,
        env: { ...MINT, PAYGRESS_HTTP_PORT: '9090' },
      }),
    ),
    [
      /^admin\.port: 9090 is not a free port \(http\.port \(PAYGRESS_HTTP_PORT\) has it\)$/,
    ],
    'the variable that made the clash is named',
  );
  const ephemeral = loadConfig({
    env: {
      ...MINT,
      PAYGRESS_HTTP_PORT: '0',
      PAYGRESS_GRPC_PORT: '0',
      PAYGRESS_ADMIN_PORT: '0',
    },
  });
  t.equal(ephemeral.admin?.port, 0, 'port 0 is never taken');
});

t.test('an empty variable counts as unset', async (t) => {
  const config = loadConfig({ env: { ...MINT, PAYGRESS_HTTP_PORT: '' } });
  t.equal(config.http.port, 8080);
});

t.test('unknown keys are refused, however deep', async (t) => {
  const file = yamlFile(
    t,
    [
      'mints: [https://mint.example.com]',
      'htpp: { port: 1 }',
      'pricing:',
      '  rules:',
      '    - name: a',
      '      match: { paht: /a }',
      '      free: true',
    ].join('\n'),
  );

  const problems = problemsOf(() => loadConfig({ file, env: {} }));
  t.match(problems, [
    /^htpp: unknown key/,
    /^pricing\.rules\[0\]\.match\.paht: unknown key, expected one of host, path, pathMatch, methods/,
  ]);
});

t.test(
  'each problem names the key, the value and the expectation',
  async (t) => {
    const file = yamlFile(
      t,
      [
        'mints: [https://mint.example.com]',
        'http: { port: 70000, maxConnections: 0 }',
        'logLevel: loud',
        'pricing:',
        '  rules:',
        '    - { name: a, free: true }',
        '    - { name: b, price: { amount: 1 } }',
        '    - { name: c, price: { amount: -5 } }',
        '    - { name: a, price: { amount: 1, unit: SAT } }',
        '    - { name: e, match: { path: /x/*, pathMatch: prefix }, free: true }',
        '    - { name: f, rate: { amount: 1, minSeconds: 100, maxSeconds: 10 } }',
        '    - { name: g, price: { amount: 1 }, free: true }',
        '    - { name: h, match: { path: /h } }',
        '    - { name: i, rate: { amount: 1, perSeconds: 9007199254740991, maxSeconds: 315360001 } }',
        'grants: { cookieName: "bad cookie" }',
        'grpc: { host: "127.0.0.1:9001" }',
      ].join('\n'),
    );

    const problems = problemsOf(() =>
      loadConfig({
        file,
        env: { PAYGRESS_MINT_TIMEOUT_MS: 'soon', PAYGRESS_DEV_MINT: 'maybe' },
      }),
    );
    const expected = [
      'http.port: 70000 is not an integer from 0 to 65535 (TCP port)',
      'http.maxConnections: 0 is not a positive integer (connections open at once)',
      'logLevel: "loud" is not one of fatal, error, warn, info, debug, trace, silent',
      'mint.timeoutMs (PAYGRESS_MINT_TIMEOUT_MS): "soon" is not a positive integer of milliseconds, at most 2147483647 (24.8 days)',
      "pricing.rules[2].price.amount: -5 is not a positive integer (amount in the rule's unit)",
      'pricing.rules[3].name: "a" is not a unique name',
      'pricing.rules[3].price.unit: "SAT" is not a Cashu unit in lower case, e.g. sat',
      'pricing.rules[4].match.path: "/x/*" is not a path without * (use pathMatch: glob for wildcards)',
      'pricing.rules[5].rate.maxSeconds: 10 is not at least minSeconds (100)',
      'pricing.rules[6]: has both price and free, expected exactly one of price, rate and free',
      'pricing.rules[7]: has none, expected exactly one of price, rate and free',
      'pricing.rules[8].rate.perSeconds: 9007199254740991 is not a positive integer of seconds that amount buys, at most 315360000 (ten years)',
      'pricing.rules[8].rate.maxSeconds: 315360001 is not a positive integer of seconds, at most 315360000 (ten years)',
      'grpc.host: "127.0.0.1:9001" is not a host name or IP address without a port (IPv6 without brackets, e.g. ::1)',
      'devMint (PAYGRESS_DEV_MINT): "maybe" is not true or false (in the environment also yes/no, on/off, 1/0)',
      'grants.key: missing, expected a secret of at least 32 bytes (rate rules issue grants)',
      'grants.cookieName: "bad cookie" is not a cookie name',
    ];
    for (const line of expected) {
      t.ok(
        problems.some((p) => p.startsWith(line)),
        line,
      );
    }
    t.equal(problems.length, expected.length, 'nothing else reported');
  },
);

t.test(
  'a grant cookie name with a prefix browsers enforce is refused',
  async (t) => {
    // Paygress names the cookie `__Host-<name>` over https and `<name>`
    // over http; a prefixed name would be doubled, or refused by browsers
    // over http.
    for (const name of [
      '__Host-pg',
      '__host-pg',
      '__Secure-pg',
      '__SECURE-pg',
    ]) {
      t.same(
        problemsOf(() =>
          loadConfig({
            env: {
              PAYGRESS_MINTS: 'https://mint.example',
              PAYGRESS_GRANT_COOKIE: name,
            },
          }),
        ),
        [
          `grants.cookieName (PAYGRESS_GRANT_COOKIE): "${name}" is not a cookie name (an HTTP token) without a __Host- or __Secure- prefix (Paygress adds __Host- itself over https)`,
        ],
        name,
      );
    }
    const config = loadConfig({
      env: {
        PAYGRESS_MINTS: 'https://mint.example',
        PAYGRESS_GRANT_COOKIE: '__pg',
      },
    });
    t.equal(config.grants.cookieName, '__pg');
  },
);

t.test('grant keys are never printed in problems', async (t) => {
  const secret = 'hunter2-secret';
  const problems = problemsOf(() =>
    loadConfig({
      env: {
        ...MINT,
        PAYGRESS_GRANT_KEY: secret,
        PAYGRESS_GRANT_PREVIOUS_KEYS: `${secret}-old`,
      },
    }),
  );

  t.match(problems, [
    'grants.key (PAYGRESS_GRANT_KEY): a 14-byte secret is not a secret of at least 32 bytes',
    'grants.previousKeys[0] (PAYGRESS_GRANT_PREVIOUS_KEYS): a 18-byte secret is not a secret of at least 32 bytes',
  ]);
  t.notOk(problems.join('\n').includes(secret));
});

t.test('nothing that may be a secret is printed in problems', async (t) => {
  const secret = 'S3cr3t-Passw0rd-0123456789abcdef';
  const privateKey = 'ab'.repeat(32);
  const cases: [string, () => unknown, string | RegExp][] = [
    [
      'a mint URL with credentials',
      () =>
        loadConfig({
          env: { PAYGRESS_MINTS: `https://alice:${secret}@mint.example.com` },
        }),
      'mints[0].url (PAYGRESS_MINTS): "https://***@mint.example.com" is not a URL without credentials',
    ],
    [
      'a mint URL in the environment with a key in its query',
      () =>
        loadConfig({
          env: { PAYGRESS_MINTS: `https://mint.example.com/?apikey=${secret}` },
        }),
      'mints[0].url (PAYGRESS_MINTS): "https://mint.example.com/?***" is not a URL without query or fragment',
    ],
    [
      'one whose key is in lower case, which a unit could be',
      () =>
        loadConfig({
          env: { PAYGRESS_MINTS: 'https://mint.example.com/?apikey=lowercase' },
        }),
      'mints[0].url (PAYGRESS_MINTS): "https://mint.example.com/?***" is not a URL without query or fragment',
    ],
    [
      'a password with = in it, in the environment',
      () =>
        loadConfig({
          env: {
            PAYGRESS_MINTS: `https://admin:Pa=${secret}@mint.example.com`,
          },
        }),
      /^mints\[0\]\.url \(PAYGRESS_MINTS\): "https:\/\/\*\*\*@mint\.example\.com" is not/,
    ],
    [
      'a password with / in it, which keeps the URL from parsing',
      () =>
        loadConfig({
          file: yamlFile(
            t,
            `mints: ["https://admin:Pa/${secret}@mint.example.com"]\n`,
          ),
          env: {},
        }),
      /^mints\[0\]\.url: "https:\/\/\*\*\*@mint\.example\.com" is not/,
    ],
    [
      'a fragment',
      () =>
        loadConfig({
          file: yamlFile(
            t,
            `mints: ["https://mint.example.com/v1#k=${secret}"]\n`,
          ),
          env: {},
        }),
      'mints[0].url: "https://mint.example.com/v1?***" is not a URL without query or fragment',
    ],
    [
      'a grant key written unquoted after a *',
      () =>
        loadConfig({
          file: yamlFile(t, `grants:\n  key: *${secret}\n`),
          env: MINT,
        }),
      /a value starting with \* is read as a YAML alias that names no anchor; quote/,
    ],
    [
      'a mint URL with an API key in its query',
      () =>
        loadConfig({
          file: yamlFile(
            t,
            `mints: ["https://mint.example.com/?apikey=${secret}"]\n`,
          ),
          env: {},
        }),
      'mints[0].url: "https://mint.example.com/?***" is not a URL without query or fragment',
    ],
    [
      'a mint URL with credentials and a typo',
      () =>
        loadConfig({
          file: yamlFile(
            t,
            `mints: ["https://alice:${secret}@mint.example.com x#${secret}"]\n`,
          ),
          env: {},
        }),
      /^mints\[0\]\.url: "https:\/\/\*\*\*@mint\.example\.com x\?\*\*\*" is not/,
    ],
    [
      'a grant key written as the whole grants section',
      () => loadConfig({ file: yamlFile(t, `grants: ${secret}\n`), env: MINT }),
      /^grants: a 32-byte secret is not a mapping/,
    ],
    [
      'a grant key written as a list',
      () =>
        loadConfig({
          file: yamlFile(t, `grants: { key: [${secret}] }\n`),
          env: MINT,
        }),
      /^grants\.key: a list is not a secret of at least 32 bytes/,
    ],
    [
      'a private key where the public one belongs',
      () =>
        loadConfig({
          file: yamlFile(t, `wallet: { operatorPubkey: ${privateKey} }\n`),
          env: MINT,
        }),
      /^wallet\.operatorPubkey: a value of 64 characters \(not shown\) is not a compressed secp256k1 public key/,
    ],
    [
      "a timeout past Node's longest timer",
      () =>
        loadConfig({
          env: { ...MINT, PAYGRESS_MINT_TIMEOUT_MS: '2147483648' },
        }),
      'mint.timeoutMs (PAYGRESS_MINT_TIMEOUT_MS): 2147483648 is not a positive integer of milliseconds, at most 2147483647 (24.8 days)',
    ],
    [
      'a shutdown grace past it',
      () =>
        loadConfig({
          env: { ...MINT, PAYGRESS_SHUTDOWN_GRACE_MS: '99999999999' },
        }),
      /^shutdownGraceMs \(PAYGRESS_SHUTDOWN_GRACE_MS\): 99999999999 is not a non-negative integer of milliseconds, at most 2147483647/,
    ],
    [
      'a replay cache too large to allocate',
      () =>
        loadConfig({
          env: { ...MINT, PAYGRESS_REPLAY_CACHE_SIZE: '999999999999' },
        }),
      'replay.cacheSize (PAYGRESS_REPLAY_CACHE_SIZE): 999999999999 is not a positive integer of entries, at most 100000000 (about 23 bytes of memory each)',
    ],
    [
      'a mint with = and no unit after it',
      () => loadConfig({ env: { PAYGRESS_MINTS: 'https://a.example=' } }),
      'mints[0].units[0] (PAYGRESS_MINTS): "" is not a Cashu unit in lower case, e.g. sat',
    ],
    [
      'two mints separated as other lists are',
      () =>
        loadConfig({
          env: { PAYGRESS_MINTS: 'https://a.example,https://b.example' },
        }),
      'mints[0].url (PAYGRESS_MINTS): "https://a.example,https://b.example" is not one mint URL (separate mints with ";": a;b or a=sat;b=usd)',
    ],
  ];
  for (const [name, load, expected] of cases) {
    const problems = problemsOf(load);
    t.match(problems, [expected], name);
    const text = problems.join('\n');
    t.notOk(
      text.includes(secret) || text.includes(privateKey),
      `${name}: not shown`,
    );
  }
});

t.test('charged units must be offered by a mint', async (t) => {
  const env = { ...MINT, PAYGRESS_DEFAULT_UNIT: 'usd' };
  t.match(
    problemsOf(() => loadConfig({ env })),
    [/^pricing: unit usd is charged but no configured mint offers it/],
  );
});

t.test('provisioning needs a valid pod template when enabled', async (t) => {
  const env = { ...MINT, ENABLE_POD_PROVISIONING: 'true' };
  t.match(
    problemsOf(() => loadConfig({ env })),
    [/^provisioning\.template: missing, expected a pod template/],
  );

  const file = yamlFile(
    t,
    'provisioning: { template: { image: app, ports: [{ containerPort: 0 }], imagePullPolicy: Always } }\n',
  );
  t.match(
    problemsOf(() => loadConfig({ file, env: MINT })),
    [
      /^provisioning\.template\.imagePullPolicy: unknown key/,
      /^provisioning\.template: `provisioning\.template\.ports\[0\]\.containerPort` must be an integer/,
    ],
  );
});

t.test('mint URLs are normalised and compared exactly', async (t) => {
  t.equal(
    normaliseMintUrl('https://Mint.Example.com/'),
    'https://mint.example.com',
  );
  t.equal(
    normaliseMintUrl('HTTPS://mint.example.com:443/'),
    'https://mint.example.com',
  );
  t.equal(
    normaliseMintUrl('https://mint.example.com/cashu//'),
    'https://mint.example.com/cashu',
  );
  t.equal(
    normaliseMintUrl('https://mint.example.com:8443'),
    'https://mint.example.com:8443',
  );
  t.equal(normaliseMintUrl('http://127.0.0.1:3338/'), 'http://127.0.0.1:3338');
  t.equal(normaliseMintUrl('http://[::1]:3338'), 'http://[::1]:3338');
  t.not(
    normaliseMintUrl('https://mint.example.com.evil'),
    normaliseMintUrl('https://mint.example.com'),
  );

  t.throws(() => normaliseMintUrl('http://mint.example.com'), /https URL/);
  t.equal(
    normaliseMintUrl('http://mint.example.com', true),
    'http://mint.example.com',
  );
  t.throws(
    () => normaliseMintUrl('https://user:pw@mint.example.com'),
    /credentials/,
  );
  t.throws(() => normaliseMintUrl('https://mint.example.com/?a=1'), /query/);
  t.throws(() => normaliseMintUrl('https://mint.example.com/#x'), /fragment/);
  t.throws(() => normaliseMintUrl('ftp://mint.example.com'), /http\(s\)/);
  t.throws(() => normaliseMintUrl('mint.example.com'), /absolute URL/);
});

t.test('a mint listed twice after normalisation is refused', async (t) => {
  const env = {
    PAYGRESS_MINTS: 'https://Mint.Example.com/;https://mint.example.com',
  };
  t.match(
    problemsOf(() => loadConfig({ env })),
    [
      /^mints\[1\]\.url \(PAYGRESS_MINTS\): "https:\/\/mint\.example\.com" is not a mint listed once/,
    ],
  );
});

t.test('rules become typed charges with defaults applied', async (t) => {
  const file = yamlFile(
    t,
    [
      'mints: [{ url: https://mint.example.com, units: [sat, usd] }]',
      `grants: { key: ${KEY} }`,
      'pricing:',
      '  default: { amount: 5, unit: usd }',
      '  rules:',
      '    - name: premium',
      '      match: { host: API.example.com, path: /premium, methods: [get] }',
      '      price: { amount: 7 }',
      '    - name: compute',
      '      match: { path: /compute/**, pathMatch: glob }',
      '      rate: { amount: 10, unit: sat }',
    ].join('\n'),
  );

  const { rules } = loadConfig({ file, env: {} }).pricing;
  t.same(rules, [
    {
      name: 'premium',
      match: {
        host: 'api.example.com',
        path: '/premium',
        pathMatch: 'prefix',
        methods: ['GET'],
      },
      charge: { kind: 'request', amount: 7, unit: 'usd' },
    },
    {
      name: 'compute',
      match: { path: '/compute/**', pathMatch: 'glob' },
      charge: {
        kind: 'rate',
        amount: 10,
        unit: 'sat',
        perSeconds: 60,
        minSeconds: 60,
        maxSeconds: 86400,
      },
    },
  ]);
});

t.test('YAML syntax errors and unreadable files are reported', async (t) => {
  const file = yamlFile(t, 'http: { port: 1\n');
  t.match(
    problemsOf(() => loadConfig({ file, env: {} })),
    [/^config file .*paygress\.yaml, line \d+ column \d+: /],
  );
  const unclosed = yamlFile(t, 'logLevel: info\nmints: [https://a.example\n');
  t.match(
    problemsOf(() => loadConfig({ file: unclosed, env: {} })),
    [/, line 3 column 1: /],
    'where the parser gave up',
  );
  t.match(
    problemsOf(() => loadConfig({ file: `${file}.missing`, env: {} })),
    [/cannot be read \(ENOENT\)/],
  );
  const list = yamlFile(t, '- a\n');
  t.match(
    problemsOf(() => loadConfig({ file: list, env: {} })),
    [/is not a YAML mapping/],
  );

  // `*` starts a YAML alias: a host pattern left unquoted names none.
  const alias = yamlFile(
    t,
    'pricing:\n  rules:\n    - { name: a, match: { host: *.example.com }, free: true }\n',
  );
  t.match(
    problemsOf(() => loadConfig({ file: alias, env: {} })),
    [
      /: a value starting with \* is read as a YAML alias that names no anchor; quote a value that starts with \* \(e\.g\. '\*\.example\.com'\)$/,
    ],
  );
  const aliases = yamlFile(
    t,
    `x: &a [1]\ny: [${Array(150).fill('*a').join(', ')}]\n`,
  );
  t.match(
    problemsOf(() => loadConfig({ file: aliases, env: {} })),
    [/: Excessive alias count/],
  );
  const nested = yamlFile(t, `a: ${'['.repeat(400)}\n`);
  const many = problemsOf(() => loadConfig({ file: nested, env: {} }));
  t.equal(many.length, 11, 'ten YAML errors at most, then a count');
  t.match(many.at(-1), /: \d+ more YAML errors$/);

  // What a shell hands over as a file is read, to the limit only; a
  // directory is no configuration.
  const dir = t.testdir({ 'big.yaml': `# ${'x'.repeat(1024 * 1024)}\n` });
  for (const [path, problem] of [
    ['/dev/zero', /is larger than the 1048576 bytes a configuration may be$/],
    [dir, /is not a file \(a directory\)$/],
    [
      join(dir, 'big.yaml'),
      /larger than the 1048576 bytes a configuration may be$/,
    ],
  ] as const) {
    t.match(
      problemsOf(() => loadConfig({ file: path, env: {} })),
      [problem],
      path,
    );
  }
  t.same(
    loadConfig({ file: '/dev/null', env: MINT }).mints.map((m) => m.url),
    ['https://mint.example.com'],
    '/dev/null: no file',
  );
  const fifo = join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  const writer = spawn('sh', ['-c', `printf 'logLevel: warn\\n' > '${fifo}'`]);
  t.equal(
    loadConfig({ file: fifo, env: MINT }).logLevel,
    'warn',
    'a pipe, as <(...) gives',
  );
  await once(writer, 'exit');
});

t.test('the example file in the repository is valid', async (t) => {
  const file = new URL('../paygress.example.yaml', import.meta.url).pathname;
  const env = {
    PAYGRESS_GRANT_KEY: 'a-grant-key-of-the-operators-own-0123456789',
  };
  const config = loadConfig({ file, env });
  t.equal(config.pricing.rules.length, 3);
  t.equal(config.provisioning.template?.image, 'ghcr.io/example/workspace:1.0');
});

t.test('the configured rules drive Pricing as written', async (t) => {
  const file = new URL('../paygress.example.yaml', import.meta.url).pathname;
  const { pricing, mints } = loadConfig({
    file,
    env: { PAYGRESS_GRANT_KEY: 'a-grant-key-of-the-operators-own-0123456789' },
  });
  const router = new Pricing(pricing.rules, pricing.default, {
    trustedAmountHeader: pricing.trustedAmountHeader,
    mints,
  });
  const route = (host: string, path: string) =>
    router.route({
      protocol: 'forward',
      method: 'GET',
      scheme: 'https',
      host,
      path,
      query: '',
      headers: {},
      clientAddress: '',
      requestId: 'r',
    });

  t.equal(route('api.example.com', '/public/x').name, 'health');
  t.equal(route('api.example.com', '/premium').name, 'premium');
  t.equal(route('other.example.com', '/premium').name, 'default');
  t.same(route('any.example', '/compute/job').charge, {
    kind: 'rate',
    amount: 10,
    unit: 'sat',
    perSeconds: 60,
    minSeconds: 60,
    maxSeconds: 86400,
  });
  t.same(route('any.example', '/x').mints, [
    'https://mint.example.com',
    'http://127.0.0.1:3338',
  ]);
});

t.test('docs/configuration.md documents every variable', async (t) => {
  const doc = readFileSync(
    new URL('../docs/configuration.md', import.meta.url),
    'utf8',
  );
  const rows = doc
    .split('\n')
    .map((line) => line.split('|').map((cell) => cell.trim()));
  for (const [name, key] of ENV_VARS) {
    const row = rows.find((cells) => cells[1] === `\`${key}\``);
    t.match(row?.[2], `\`${name}\``, `${key} / ${name}`);
  }
});

t.test('the README settings table names every variable', async (t) => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  for (const [name, key] of ENV_VARS) {
    t.ok(readme.includes(`\`${name}\``), `${key} / ${name}`);
  }
});

t.test('credits need a grants.key that outlives the process', async (t) => {
  const file = yamlFile(
    t,
    'provisioning: { enabled: true, template: { image: app } }\n',
  );
  const pubkey = `02${'ab'.repeat(32)}`;
  t.same(
    problemsOf(() =>
      loadConfig({ file, env: { ...MINT, PAYGRESS_OPERATOR_PUBKEY: pubkey } }),
    ),
    [
      'grants.key: missing, expected a secret of at least 32 bytes (with wallet.operatorPubkey (PAYGRESS_OPERATOR_PUBKEY) and provisioning on, a payment whose pod cannot be made is kept as a credit, which a key of one process would void at its restart): set PAYGRESS_GRANT_KEY, or grants.key in the file',
    ],
  );
  const keyed = loadConfig({
    file,
    env: { ...MINT, PAYGRESS_OPERATOR_PUBKEY: pubkey, PAYGRESS_GRANT_KEY: KEY },
  });
  t.equal(keyed.grants.key, KEY);
  // Without provisioning there are no credits; without the operator's
  // key a failed pod's payment is refunded, not kept.
  t.equal(
    loadConfig({ env: { ...MINT, PAYGRESS_OPERATOR_PUBKEY: pubkey } }).grants
      .key,
    undefined,
  );
  t.equal(loadConfig({ file, env: MINT }).grants.key, undefined);
});
