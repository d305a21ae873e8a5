/**
 * `paygress wallet balance` and `paygress wallet export`, run as the
 * operator runs them: child processes reading the data directory a
 * stopped Paygress left behind. Export must hand out every stored proof
 * that is still good exactly once, in tokens another wallet can receive,
 * and mark nothing when it could not check with the mint.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { getTokenMetadata } from '@cashu/cashu-ts';
import { encodeToken } from '../../src/core/token.ts';
import { startDevMint } from '../../src/devmint/index.ts';
import { SqliteWalletStore } from '../../src/store/sqlite-wallet-store.ts';
import { NODE, PAYGRESS_BIN } from '../support/paygress-process.ts';
import { send, startStack } from '../support/stack.ts';
import { mintToken, testWallet } from '../support/wallet.ts';

const PRICE = 10;

const a = await startDevMint();
const b = await startDevMint();
const dataDir = mkdtempSync(join(tmpdir(), 'paygress-wallet-cli-'));
t.teardown(async () => {
  await a.close();
  await b.close();
  rmSync(dataDir, { recursive: true, force: true });
});

/** Runs Paygress on `dataDir` against both mints while `work` pays it. */
async function withPaygress(
  work: (
    pay: (mintUrl: string, amount: number) => Promise<string>,
  ) => Promise<void>,
): Promise<void> {
  const stack = await startStack({
    price: PRICE,
    mint: a,
    dataDir,
    env: { PAYGRESS_MINTS: `${a.url};${b.url}` },
  });
  try {
    await work(async (mintUrl, amount) => {
      const out = await send(stack, 'forward', {
        'X-Cashu': await mintToken(mintUrl, amount),
      });
      return out.allowed ? 'allowed' : (out.reason ?? String(out.status));
    });
  } finally {
    await stack.close();
  }
}

/** Runs `paygress wallet ...args` on `dataDir`. */
function cli(
  ...args: string[]
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return cliTo('pipe', ...args);
}

/** Runs `paygress wallet ...args` with its standard output to `out`. */
function cliTo(
  out: 'pipe' | number,
  ...args: string[]
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return cliIn(dataDir, out, ...args);
}

/** {@link cliTo} on another data directory. */
function cliIn(
  dir: string,
  out: 'pipe' | number,
  ...args: string[]
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(NODE, [PAYGRESS_BIN, 'wallet', ...args], {
    env: {
      PATH: process.env.PATH ?? '',
      PAYGRESS_MINTS: `${a.url};${b.url}`,
      PAYGRESS_DATA_DIR: dir,
      PAYGRESS_MINT_TIMEOUT_MS: '2000',
    },
    stdio: ['ignore', out, 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk));
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const tokens = (stdout: string) => stdout.split('\n').filter(Boolean);

const value = (token: string) => getTokenMetadata(token).amount.toNumber();

/**
 * Receives `token` into a fresh wallet: the mint swaps it, or throws. With
 * `requireDleq`, only if every proof carries a DLEQ proof that verifies.
 */
async function receive(token: string, requireDleq = false): Promise<number> {
  const { mint } = getTokenMetadata(token);
  const proofs = await (await testWallet(mint)).receive(token, { requireDleq });
  return proofs.reduce((s, p) => s + p.amount.toNumber(), 0);
}

function inStore<T>(read: (store: SqliteWalletStore) => T): T {
  const store = new SqliteWalletStore({ dataDir });
  try {
    return read(store);
  } finally {
    store.close();
  }
}

t.test('no wallet store: neither command makes one', async (t) => {
  for (const command of ['balance', 'export'] as const) {
    const out = await cli(command);
    t.equal(out.code, 1, command);
    t.equal(out.stdout, '');
    t.equal(
      out.stderr,
      `paygress wallet: no wallet store at ${join(dataDir, 'wallet.sqlite')}; is dataDir (PAYGRESS_DATA_DIR) the one Paygress serves with? Nothing was created.\n`,
    );
  }
  t.same(readdirSync(dataDir), [], 'the directory is left empty');

  // A store that cannot be looked at is not called missing: opening it
  // says why (here a file where a directory of its path should be).
  const file = join(dataDir, 'a-file');
  writeFileSync(file, '');
  const blocked = await cliIn(join(file, 'data'), 'pipe', 'balance');
  rmSync(file);
  t.equal(blocked.code, 1);
  t.match(blocked.stderr, /a part of its path is a file, not a directory/);
});

t.test(
  'the serving configuration is read without the grant key it needs to serve',
  async (t) => {
    // A rate rule needs grants.key to serve; the wallet signs nothing.
    const config = join(
      dataDir,
      '..',
      `paygress-wallet-rate-${process.pid}.yaml`,
    );
    writeFileSync(
      config,
      'pricing:\n  rules:\n    - name: compute\n      match: { path: /compute }\n      rate: { amount: 10, unit: sat, perSeconds: 60 }\n',
    );
    t.teardown(() => rmSync(config));
    const out = await cli('balance', '--config', config);
    t.equal(out.code, 1);
    t.match(out.stderr, /no wallet store at/, 'the store is looked for');

    // Without the mints the store is read with, it says where settings
    // come from.
    const bare = spawn(NODE, [PAYGRESS_BIN, 'wallet', 'balance'], {
      env: { PATH: process.env.PATH ?? '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    bare.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
    const [code] = (await once(bare, 'close')) as [number | null];
    t.equal(code, 2);
    t.match(stderr, /^invalid configuration:\n  mints: missing/);
    t.match(
      stderr,
      /paygress wallet reads the configuration Paygress serves with, for its data directory and mints: --config FILE or PAYGRESS_CONFIG/,
    );
  },
);

t.test('an empty wallet says so', async (t) => {
  inStore(() => undefined);
  const out = await cli('balance');
  t.equal(out.code, 0);
  t.equal(out.stdout, 'the wallet is empty\n');
});

t.test('balance shows stored and pending value per mint', async (t) => {
  await withPaygress(async (pay) => {
    t.equal(await pay(a.url, 64), 'allowed');
    t.equal(await pay(a.url, 32), 'allowed');
    t.equal(await pay(b.url, 40), 'allowed');

    // A swap the mint holds past Paygress's deadline stays pending.
    a.setFault('swap', { kind: 'hang' });
    t.equal(await pay(a.url, 16), 'PAYGRESS_MINT_UNAVAILABLE');
  });
  // Released after Paygress stopped: the swap runs, nobody hears of it.
  a.setFault('swap', undefined);

  const out = await cli('balance');
  t.equal(out.code, 0);
  // One line per mint, sorted by mint URL.
  t.equal(
    out.stdout,
    [
      `${a.url}\t96 sat available\t16 sat pending\n`,
      `${b.url}\t40 sat available\t0 sat pending\n`,
    ]
      .sort()
      .join(''),
  );
});

t.test('export prints one receivable token per mint, once', async (t) => {
  const first = await cli('export');
  t.equal(first.code, 0, first.stderr);
  const mintOf = (tok: string) => getTokenMetadata(tok).mint;
  const printed = tokens(first.stdout).sort((x, y) =>
    mintOf(x) === a.url ? -1 : mintOf(y) === a.url ? 1 : 0,
  );
  t.equal(printed.length, 2, 'one token per mint and unit');
  t.same(
    printed.map((tok) => {
      const { mint, unit } = getTokenMetadata(tok);
      return { mint, unit, value: value(tok) };
    }),
    [
      { mint: a.url, unit: 'sat', value: 96 },
      { mint: b.url, unit: 'sat', value: 40 },
    ],
  );
  t.ok(printed.every((tok) => tok.startsWith('cashuB')));
  t.match(first.stderr, `${a.url}: exported 96 sat`);

  const again = await cli('export');
  t.equal(again.code, 0);
  t.equal(again.stdout, '', 'a second export prints nothing new');
  t.equal(again.stderr, 'nothing to export\n', 'and says so');

  t.equal(
    await receive(printed[0]!, true),
    96,
    "mint A takes its token, its proofs with the mint's DLEQ proofs",
  );
  t.equal(await receive(printed[1]!), 40, 'mint B takes its token');

  const balance = await cli('balance');
  t.equal(balance.stdout, `${a.url}\t0 sat available\t16 sat pending\n`);
});

t.test('proofs already spent at the mint are not exported', async (t) => {
  // Restarting settles the pending swap: its outputs are recovered.
  await withPaygress(async (pay) => {
    t.equal(await pay(a.url, 24), 'allowed');
  });
  const stored = inStore((s) => s.unspent(a.url, 'sat'));
  t.equal(
    stored.reduce((sum, p) => sum + p.amount, 0),
    40,
    'recovered 16 and paid 24',
  );

  // Someone with a copy of the store spends one proof behind its back.
  const stolen = stored[0]!;
  t.equal(await receive(wireToken(a.url, [stolen])), stolen.amount);

  const out = await cli('export');
  t.equal(out.code, 0, out.stderr);
  const printed = tokens(out.stdout);
  t.equal(printed.length, 1);
  t.equal(
    value(printed[0]!),
    40 - stolen.amount,
    'the spent proof is left out',
  );
  t.equal(
    await receive(printed[0]!),
    40 - stolen.amount,
    'and the rest is good',
  );
  t.same(
    inStore((s) => s.unspent(a.url, 'sat')),
    [],
    'nothing left to export',
  );
});

t.test('export with the mint down marks nothing and fails', async (t) => {
  await withPaygress(async (pay) => {
    t.equal(await pay(a.url, 48), 'allowed');
  });
  const before = inStore((s) => s.unspent(a.url, 'sat'));

  await a.stop();
  const down = await cli('export');
  await a.start();
  t.not(down.code, 0, 'exits non-zero');
  t.equal(down.stdout, '', 'prints no token');
  t.match(down.stderr, `${a.url}: not exported`);
  t.same(
    inStore((s) => s.unspent(a.url, 'sat')),
    before,
    'nothing marked',
  );

  const up = await cli('export');
  t.equal(up.code, 0, up.stderr);
  t.equal(await receive(tokens(up.stdout)[0]!), 48, 'exported once it is back');
});

t.test(
  'export whose output cannot be written fails, and the next one prints the token',
  { skip: existsSync('/dev/full') ? false : 'needs /dev/full' },
  async (t) => {
    await withPaygress(async (pay) => {
      t.equal(await pay(a.url, 32), 'allowed');
    });
    const before = inStore((s) => s.unspent(a.url, 'sat'));

    // Every write to /dev/full fails with ENOSPC.
    const full = openSync('/dev/full', 'w');
    t.teardown(() => closeSync(full));
    const out = await cliTo(full, 'export');
    t.equal(out.code, 1, 'exits 1');
    t.match(out.stderr, 'could not write a token to standard output (ENOSPC');
    t.match(out.stderr, 'it stays in the store, and the next export prints it');
    t.notMatch(out.stderr, 'exported', 'claims nothing was exported');
    const kept = inStore((s) => s.unprintedExports());
    t.equal(kept.length, 1, 'the token is kept, unprinted');
    const worth = before.reduce((n, p) => n + p.amount, 0);
    t.equal(value(kept[0]!.token), worth);
    const shown = await cli('balance');
    t.match(
      shown.stdout,
      `${a.url}\t${worth} sat in tokens an export recorded and could not print: the next export prints them\n`,
      'the balance shows it, out of the value available',
    );

    const again = await cli('export');
    t.equal(again.code, 0, again.stderr);
    t.match(
      again.stderr,
      /: a token of \d+ sat an earlier export could not print, printed now/,
    );
    t.equal(await receive(tokens(again.stdout)[0]!), 32, 'exported later');
    t.same(
      inStore((s) => s.unprintedExports()),
      [],
      'and known printed',
    );
  },
);

function wireToken(
  mint: string,
  proofs: readonly { id: string; amount: number; secret: string; C: string }[],
): string {
  return encodeToken(mint, 'sat', proofs);
}

t.test('two exports at once never print a proof twice', async (t) => {
  await withPaygress(async (pay) => {
    t.equal(await pay(a.url, 64), 'allowed');
  });
  const held = inStore((store) =>
    store.unspent(a.url, 'sat').reduce((n, p) => n + p.amount, 0),
  );
  // Both start while the mint is slow to say the proofs are unspent: one
  // export runs at a time, the other is refused at once.
  a.setFault('checkstate', { kind: 'delay', ms: 1500 });
  const both = await Promise.all([cli('export'), cli('export')]);
  a.setFault('checkstate', undefined);

  const printed = both.flatMap((out) => tokens(out.stdout));
  t.equal(printed.length, 1, 'one token, from one of them');
  t.equal(value(printed[0]!), held, 'all that was held');
  t.same(
    both.map((out) => out.code).sort(),
    [0, 1],
    'one ran, one was refused',
  );
  t.match(
    both.find((out) => out.code === 1)!.stderr,
    'another paygress wallet command (an export, a backup, a restore) is running',
  );
  t.equal(await receive(printed[0]!), held, 'and it is good money');
});
