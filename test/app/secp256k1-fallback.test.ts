/**
 * Where the native libsecp256k1 binary does not load (another platform),
 * a real Paygress process on `auto` warns once at start-up, names the
 * WebAssembly build and redeems with it; on `native` it refuses to start
 * with a line that says why and what to set; on `wasm` it never loads the
 * binary at all, so one that kills the process as it loads cannot. The
 * binary's absence (or fatal load) is made with a module resolution hook
 * on `secp256k1/bindings`.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { startDevMint } from '../../src/devmint/index.ts';
import { NODE, PAYGRESS_BIN } from '../support/paygress-process.ts';
import { mintToken } from '../support/wallet.ts';

const HOOK = `
import { registerHooks } from 'node:module';
registerHooks({
  resolve(specifier, context, next) {
    if (specifier === 'secp256k1/bindings') {
      throw Object.assign(new Error('No native build was found for this platform'), { code: 'MODULE_NOT_FOUND' });
    }
    return next(specifier, context);
  },
});
`;
const noNative = `data:text/javascript,${encodeURIComponent(HOOK)}`;

// A binary that kills the process as it loads, as a prebuilt binary for
// the wrong CPU would.
const FATAL = HOOK.replace(/throw Object\.assign\([^;]*;/, 'process.exit(70);');
const fatalNative = `data:text/javascript,${encodeURIComponent(FATAL)}`;

async function run(setting: string, mintUrl: string, hook = noNative) {
  const dir = mkdtempSync(join(tmpdir(), 'paygress-no-native-'));
  const child = spawn(NODE, [`--import=${hook}`, PAYGRESS_BIN, 'serve'], {
    env: {
      PATH: process.env.PATH ?? '',
      PAYGRESS_MINTS: mintUrl,
      PAYGRESS_HTTP_HOST: '127.0.0.1',
      PAYGRESS_HTTP_PORT: '0',
      PAYGRESS_GRPC_HOST: '127.0.0.1',
      PAYGRESS_GRPC_PORT: '0',
      PAYGRESS_DATA_DIR: join(dir, 'data'),
      PAYGRESS_SHUTDOWN_GRACE_MS: '500',
      PAYGRESS_SECP256K1: setting,
      DEFAULT_PAYMENT_AMOUNT: '100',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: Record<string, unknown>[] = [];
  let buffered = '';
  const listening = new Promise<Record<string, unknown> | undefined>(
    (resolve) => {
      child.stdout.on('data', (chunk) => {
        buffered += String(chunk);
        const parts = buffered.split('\n');
        buffered = parts.pop()!;
        for (const part of parts) {
          const line = JSON.parse(part) as Record<string, unknown>;
          lines.push(line);
          if (line.msg === 'paygress listening') resolve(line);
        }
      });
      child.once('exit', () => resolve(undefined));
    },
  );
  const exited = once(child, 'exit');
  const stop = async () => {
    if (child.exitCode === null) child.kill('SIGTERM');
    const [code] = await exited;
    rmSync(dir, { recursive: true, force: true });
    return code as number;
  };
  return { listening: await listening, lines, stop };
}

t.test('auto: a warning, then the WebAssembly build redeems', async (t) => {
  const mint = await startDevMint();
  t.teardown(() => mint.close());
  const p = await run('auto', mint.url);
  t.teardown(() => p.stop());

  t.match(p.listening, { secp256k1: 'wasm' }, 'the start-up line says wasm');
  const warnings = p.lines.filter((l) =>
    /native secp256k1/.test(String(l.msg)),
  );
  t.equal(warnings.length, 1, 'one warning');
  t.match(warnings[0], { level: 40, err: /No native build/ });

  const base = `http://127.0.0.1:${p.listening!.http}`;
  const token = await mintToken(mint.url, 100);
  const res = await fetch(`${base}/auth/forward`, {
    headers: { 'X-Forwarded-Uri': '/premium', 'X-Cashu': token },
  });
  await res.text();
  t.equal(res.status, 200, 'a real token is redeemed');
  t.equal(res.headers.get('x-payment-amount'), '100');
  t.equal(await p.stop(), 0);
});

t.test('native: refuses to start, saying why', async (t) => {
  const mint = await startDevMint();
  t.teardown(() => mint.close());
  const p = await run('native', mint.url);
  t.equal(p.listening, undefined, 'never listens');
  t.equal(await p.stop(), 1, 'exit status 1');
  t.match(p.lines.at(-1), {
    level: 60,
    msg: /could not start: the native secp256k1 build does not load.*No native build.*set secp256k1 to auto or wasm/,
  });
});

t.test('wasm: the native binary is never loaded', async (t) => {
  t.not(FATAL, HOOK, 'the hook exits instead of throwing');
  const mint = await startDevMint();
  t.teardown(() => mint.close());

  const dies = await run('auto', mint.url, fatalNative);
  t.equal(dies.listening, undefined, 'auto loads it, and dies with it');
  t.equal(await dies.stop(), 70);

  const p = await run('wasm', mint.url, fatalNative);
  t.teardown(() => p.stop());
  t.match(p.listening, { secp256k1: 'wasm' }, 'wasm starts regardless');
  t.notOk(
    p.lines.some((l) => /native secp256k1/.test(String(l.msg))),
    'and warns of nothing: wasm was asked for',
  );
  const token = await mintToken(mint.url, 100);
  const res = await fetch(
    `http://127.0.0.1:${p.listening!.http}/auth/forward`,
    {
      headers: { 'X-Forwarded-Uri': '/premium', 'X-Cashu': token },
    },
  );
  await res.text();
  t.equal(res.status, 200, 'and redeems');
  t.equal(await p.stop(), 0);
});
