/**
 * What the image holds, without a Docker engine: scripts/stage-image.sh
 * performs the Dockerfile's copy and install steps into a folder, and
 * Paygress must then run from that folder alone, on Node 24, against a
 * real (dev) mint, and stop cleanly on SIGTERM as the kubelet stops it.
 */
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { startDevMint } from '../../src/devmint/index.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const NODE = join(ROOT, 'node_modules/.bin/node');
const DEV_ONLY = ['tap', 'typescript', 'prettier', 'fast-check', 'node'];

const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');

function listTree(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((p) => !p.startsWith('node_modules'))
    .sort();
}

t.test('the staged image runs Paygress from its own files', async (t) => {
  const dir = t.testdir({ app: {}, data: {}, tmp: {} });
  const app = join(dir, 'app');

  const staged = spawnSync('sh', [join(ROOT, 'scripts/stage-image.sh'), app], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 180_000,
  });
  t.equal(staged.status, 0, staged.stderr);

  const pkg = JSON.parse(read('package.json'));
  for (const name of Object.keys(pkg.dependencies)) {
    t.ok(existsSync(join(app, 'node_modules', name)), `${name} installed`);
  }
  for (const name of DEV_ONLY) {
    t.notOk(existsSync(join(app, 'node_modules', name)), `${name} left out`);
  }
  for (const path of ['bin/paygress.ts', 'src/main.ts', 'proto']) {
    t.ok(existsSync(join(app, path)), `${path} copied`);
  }
  for (const path of ['test', 'docs', 'scripts', 'deploy', '.git']) {
    t.notOk(existsSync(join(app, path)), `${path} left out`);
  }
  const before = listTree(app);

  // As the image starts it: the ENTRYPOINT's Node options, which npm
  // start and npm run dev give too.
  const entrypoint = JSON.parse(
    /^ENTRYPOINT (\[.*\])$/m.exec(read('Dockerfile'))?.[1] ?? '[]',
  ) as string[];
  t.equal(entrypoint[0], 'node');
  t.equal(entrypoint.at(-1), '/app/bin/paygress.ts');
  const nodeOptions = entrypoint.slice(1, -1);
  for (const script of ['start', 'dev']) {
    t.match(
      pkg.scripts[script],
      `node ${[...nodeOptions, 'bin/paygress.ts'].join(' ')}`,
      `npm ${script} runs Node as the image does`,
    );
  }

  const mint = await startDevMint();
  t.teardown(() => mint.close());
  const linuxX64 = process.platform === 'linux' && process.arch === 'x64';
  const paygress = spawn(
    NODE,
    [...nodeOptions, join(app, 'bin/paygress.ts'), 'serve'],
    {
      // Outside the repository, so nothing resolves from its node_modules.
      cwd: join(dir, 'tmp'),
      env: {
        PATH: process.env.PATH ?? '',
        TMPDIR: join(dir, 'tmp'),
        PAYGRESS_MINTS: mint.url,
        PAYGRESS_HTTP_HOST: '127.0.0.1',
        PAYGRESS_HTTP_PORT: '0',
        PAYGRESS_GRPC_HOST: '127.0.0.1',
        PAYGRESS_GRPC_PORT: '0',
        PAYGRESS_DATA_DIR: join(dir, 'data'),
        PAYGRESS_SHUTDOWN_GRACE_MS: '1000',
        // The image is linux-x64: its production dependencies must carry
        // a native libsecp256k1 that loads, or Paygress refuses to start.
        PAYGRESS_SECP256K1: linuxX64 ? 'native' : 'auto',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const exited = once(paygress, 'exit');
  t.teardown(() => {
    if (paygress.exitCode === null) paygress.kill('SIGKILL');
  });
  let stderr = '';
  paygress.stderr.on('data', (chunk) => (stderr += chunk));

  const base = await listening(paygress.stdout);
  t.equal((await get(`${base}/healthz`)).status, 200, '/healthz');
  t.equal((await get(`${base}/readyz`)).status, 200, '/readyz');
  const unpaid = await get(`${base}/auth/forward`, {
    'X-Forwarded-Method': 'GET',
    'X-Forwarded-Proto': 'https',
    'X-Forwarded-Host': 'app.example.com',
    'X-Forwarded-Uri': '/premium',
  });
  t.equal(unpaid.status, 402, 'an unpaid request must pay');
  t.match(unpaid.headers.get('x-cashu'), /^creqA/);

  paygress.kill('SIGTERM');
  const [code] = await exited;
  t.equal(code, 0, `exits 0 on SIGTERM ${stderr}`);
  t.same(listTree(app), before, 'nothing written into the image');
  t.ok(existsSync(join(dir, 'data', 'wallet.sqlite')), 'store in data dir');

  t.test('its check-config accepts the ConfigMap', async (t) => {
    const configMap = parse(read('deploy/kubernetes/configmap.yaml'));
    const secret = parse(read('deploy/kubernetes/secret.example.yaml'));
    const file = join(dir, 'tmp', 'paygress.yaml');
    writeFileSync(file, configMap.data['paygress.yaml']);

    const checked = spawnSync(
      NODE,
      [join(app, 'bin/paygress.ts'), 'check-config', file],
      {
        cwd: join(dir, 'tmp'),
        env: {
          PATH: process.env.PATH ?? '',
          ...secret.stringData,
          // The operator replaces the example's placeholder, which is refused.
          PAYGRESS_GRANT_KEY:
            'an-operator-generated-grant-key-0123456789abcdef',
        },
        encoding: 'utf8',
        timeout: 20_000,
      },
    );
    t.equal(checked.status, 0, checked.stderr);
    t.match(checked.stdout, /: ok; /);
  });
});

/**
 * Resolves with Paygress's base URL once its startup line says so. Keeps
 * reading afterwards: a closed pipe would fail Paygress's later log lines.
 */
function listening(stdout: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    stdout.on('data', (chunk) => {
      buffered += String(chunk);
      const line = buffered
        .split('\n')
        .find((l) => l.includes('"paygress listening"'));
      if (line) resolve(`http://127.0.0.1:${JSON.parse(line).http}`);
    });
    stdout.on('end', () => reject(new Error('Paygress exited first')));
  });
}

async function get(url: string, headers: Record<string, string> = {}) {
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(5000) });
  await res.body?.cancel();
  return res;
}
