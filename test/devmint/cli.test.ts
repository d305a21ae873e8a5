// The dev mint CLI and scripts/dev-token.ts as a newcomer runs them.
import t from 'tap';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { setTimeout } from 'node:timers/promises';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { getDecodedToken } from '@cashu/cashu-ts';
import { startDevMint } from '../../src/devmint/index.ts';
import { testWallet } from '../support/wallet.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const node = process.execPath;

function run(
  args: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(node, args, { cwd: root });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

t.test('dev-token prints one token worth the amount', async (t) => {
  const mint = await startDevMint();
  t.teardown(() => mint.close());

  const result = await run([
    'scripts/dev-token.ts',
    '--mint',
    mint.url,
    '--amount',
    '42',
  ]);
  t.equal(result.code, 0, result.stderr);
  const lines = result.stdout.trim().split('\n');
  t.equal(lines.length, 1, 'only the token on stdout');
  t.match(lines[0], /^cashuB/);

  const wallet = await testWallet(mint.url);
  const ids = wallet.keyChain.getAllKeysetIds();
  t.equal(getDecodedToken(lines[0]!, ids).proofs.length > 0, true);
  const received = await wallet.receive(lines[0]!);
  t.equal(
    received.reduce((s, p) => s + p.amount.toNumber(), 0),
    42,
  );
});

t.test('dev-token fails clearly when no mint runs', async (t) => {
  const port = await freePort();
  const result = await run([
    'scripts/dev-token.ts',
    '--mint',
    `http://127.0.0.1:${port}`,
  ]);
  t.equal(result.code, 1);
  t.equal(result.stdout, '');
  t.match(result.stderr, /cannot reach a mint/);
  t.match(
    result.stderr,
    `npm run devmint -- --port ${port} starts one`,
    'the way to start one there, not the default port',
  );
});

t.test('dev-token answers --help', async (t) => {
  const help = await run(['scripts/dev-token.ts', '--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /^usage: npm run -s token -- \[--mint URL\]/);
});

t.test('dev-token refuses bad arguments as a usage error', async (t) => {
  for (const args of [
    ['--amount', 'abc'],
    ['--amount', '0'],
    ['--mnt', 'x'],
  ]) {
    const result = await run(['scripts/dev-token.ts', ...args]);
    t.equal(result.code, 2, `${args.join(' ')}: exit 2`);
    t.equal(result.stdout, '');
    t.match(result.stderr, /^dev-token: /);
  }
});

t.test('the CLI answers --help, and a bad option with its usage', async (t) => {
  const help = await run(['src/devmint/main.ts', '--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /^usage: npm run devmint -- \[--host H\]/);
  const bad = await run(['src/devmint/main.ts', '--bogus']);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /^Unknown option '--bogus'.*\nusage: /s);
  t.notMatch(bad.stderr, /\n\s+at /, 'no stack');
});

t.test('the CLI warns that it is for development only', async (t) => {
  const port = await freePort();
  const child = spawn(node, ['src/devmint/main.ts', '--port', String(port)], {
    cwd: root,
  });
  t.teardown(() => void child.kill('SIGTERM'));

  const firstLine = await new Promise<string>((resolve) => {
    let out = '';
    child.stdout.on('data', (chunk) => {
      out += chunk;
      if (out.includes('\n')) resolve(out.split('\n')[0]!);
    });
  });
  const entry = JSON.parse(firstLine);
  t.match(entry.msg, /development only/);
  t.match(entry.msg, /fake lightning/);
  t.equal(entry.url, `http://127.0.0.1:${port}`);
  const info = await fetch(`http://127.0.0.1:${port}/v1/info`);
  t.equal(info.status, 200);
});

t.test(
  'a dev mint started over IPC stops when its parent dies, even by SIGKILL',
  async (t) => {
    const entry = fileURLToPath(
      new URL('../../src/devmint/main.ts', import.meta.url),
    );
    const parentScript = `
      const { spawn } = require('node:child_process');
      const mint = spawn(process.execPath, [${JSON.stringify(entry)}, '--port', '0'], {
        stdio: ['ignore', 'pipe', 'ignore', 'ipc'],
      });
      mint.stdout.once('data', () => console.log(mint.pid));
      setInterval(() => {}, 1000);
    `;
    const parent = spawn(node, ['-e', parentScript], { cwd: root });
    const [line] = (await once(parent.stdout, 'data')) as [Buffer];
    const mintPid = Number(String(line).trim());
    t.teardown(() => {
      if (alive(mintPid)) process.kill(mintPid, 'SIGKILL');
    });
    t.ok(alive(mintPid), 'the mint runs');

    parent.kill('SIGKILL');
    let waited = 0;
    while (alive(mintPid) && waited < 10_000) {
      await setTimeout(50);
      waited += 50;
    }
    t.notOk(alive(mintPid), 'the mint exited with its parent');
  },
);

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
