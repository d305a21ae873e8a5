/**
 * `paygress wallet export` on a disk that fails the sync of the export's
 * own commit (test/support/sync-shim.c, preloaded): nothing is printed,
 * the export fails with one line that says why (not a crash), the store's
 * log is left as it is, not copied into the database by the close on the
 * way out, since the failed sync may have lost pages of it, and the next
 * export prints the token the failed one recorded.
 * Skipped where there is no C compiler to build the shim.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import { startDevMint } from '../../src/devmint/index.ts';
import {
  SqliteWalletStore,
  WALLET_FILE,
} from '../../src/store/sqlite-wallet-store.ts';
import { oneSatProofs, recordProofs } from '../support/many-proofs.ts';
import { NODE, PAYGRESS_BIN } from '../support/paygress-process.ts';
import { buildSyncShim } from '../support/sync-shim.ts';
import { tempDir } from '../support/temp-dir.ts';
import { decodeToken } from '../support/wallet.ts';

const work = tempDir('paygress-export-failed-sync-');

/** A module of this repository, as a URL a child can import. */
const moduleUrl = (path: string) =>
  pathToFileURL(new URL(path, import.meta.url).pathname).href;

/**
 * Runs `paygress wallet export` on `dataDir`; not with spawnSync, since
 * the mint that answers it runs in this process.
 */
async function exportFrom(
  dataDir: string,
  mintUrl: string,
  env: Record<string, string> = {},
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const child = spawn(NODE, [PAYGRESS_BIN, 'wallet', 'export'], {
    env: {
      PATH: process.env.PATH ?? '',
      PAYGRESS_MINTS: mintUrl,
      PAYGRESS_DATA_DIR: dataDir,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  return { status: await exitOf(child), stdout, stderr };
}

/** The exit status of `child`, once it is gone. */
const exitOf = (child: ChildProcess) =>
  new Promise<number | null>((resolve) =>
    child.once('close', (code) => resolve(code)),
  );
const shim = buildSyncShim(work);

t.test(
  'an export whose commit fails to sync prints nothing and leaves the log',
  { skip: shim ? false : 'no C compiler (cc) to build the sync shim' },
  async (t) => {
    const mint = await startDevMint({ dleq: false });
    t.teardown(() => mint.close());
    const dataDir = join(work, 'data');
    // Four proofs stored by a process that left its log unmerged, as a
    // Paygress stopped by a kill does: the failed commit lands after them.
    const stored = spawn(
      NODE,
      [
        '--input-type=module',
        '-e',
        `const { SqliteWalletStore } = await import(${JSON.stringify(moduleUrl('../../src/store/sqlite-wallet-store.ts'))});
         const { oneSatProofs, recordProofs } = await import(${JSON.stringify(moduleUrl('../support/many-proofs.ts'))});
         const store = new SqliteWalletStore({ dataDir: ${JSON.stringify(dataDir)} });
         const mint = ${JSON.stringify(mint.url)};
         recordProofs(store, mint, await oneSatProofs(mint, 4), 4);
         process.exit(0);`,
      ],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
    t.equal(await exitOf(stored), 0, 'four proofs stored');
    t.ok(existsSync(join(dataDir, `${WALLET_FILE}-wal`)), 'in the log');
    const run = await exportFrom(dataDir, mint.url, {
      LD_PRELOAD: shim!,
      FAIL_SYNC: '-wal',
    });
    t.equal(run.status, 1, 'the export fails');
    t.equal(run.stdout, '', 'and prints no token');
    t.match(
      run.stderr,
      /^paygress wallet: the wallet store could not put its records on disk \(EIO: [^)]*\); every token printed is recorded, and one recorded but not printed is printed first by the next export: run it again once the disk is sound\n$/m,
      'says so in one line',
    );
    t.notMatch(run.stderr, /\n\s+at /, 'no stack: not a crash');
    t.ok(
      existsSync(join(dataDir, `${WALLET_FILE}-wal`)),
      'the log is left for the next open to recover',
    );
    // The export's commit reached the log, only its sync failed: the next
    // export prints its token first (had the disk lost the commit, the
    // four proofs would be unspent, and exported as new).
    const again = await exportFrom(dataDir, mint.url);
    t.equal(again.status, 0, `the next export succeeds: ${again.stderr}`);
    t.match(
      again.stderr,
      /: a token of 4 sat an earlier export could not print, printed now/,
      'printing the token the failed one recorded',
    );
    const printed = again.stdout.split('\n').filter(Boolean);
    t.equal(printed.length, 1, 'one token');
    t.equal(
      (await decodeToken(mint.url, printed[0]!)).proofs.length,
      4,
      'with the four proofs',
    );
    const after = new SqliteWalletStore({ dataDir });
    t.teardown(() => after.close());
    t.same(after.unspent(mint.url, 'sat'), [], 'none left unspent');
    t.same(after.unprintedExports(), [], 'none left unprinted');
  },
);

t.test(
  'a token an export recorded and died before syncing is on disk before the next prints it',
  { skip: shim ? false : 'no C compiler (cc) to build the sync shim' },
  async (t) => {
    const mint = await startDevMint({ dleq: false });
    t.teardown(() => mint.close());
    const dataDir = join(work, 'died-before-sync');
    // Left open: its log then goes on, and the export's commit does not
    // begin a new one (whose header SQLite syncs within the commit).
    const store = new SqliteWalletStore({ dataDir });
    t.teardown(() => store.close());
    recordProofs(store, mint.url, await oneSatProofs(mint.url, 4), 4);
    // The first export commits its token's record, then is killed while
    // the record's sync runs (made to take 20 s).
    const firstLog = join(work, 'died-before-sync-1.log');
    const first = spawn(NODE, [PAYGRESS_BIN, 'wallet', 'export'], {
      env: {
        PATH: process.env.PATH ?? '',
        PAYGRESS_MINTS: mint.url,
        PAYGRESS_DATA_DIR: dataDir,
        LD_PRELOAD: shim!,
        SLOW_SYNC_US: '20000000',
        SLOW_SYNC_PATH: '-wal',
        SYNC_LOG: firstLog,
      },
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    let printed = '';
    first.stdout.on('data', (d) => (printed += d));
    const deadline = Date.now() + 20_000;
    while (!(
      existsSync(firstLog) &&
      /thread \S*-wal\n/.test(readFileSync(firstLog, 'utf8'))
    )) {
      if (Date.now() > deadline) throw new Error('no sync of the log seen');
      await sleep(20);
    }
    first.kill('SIGKILL');
    await exitOf(first);
    t.equal(printed, '', 'the first export printed nothing');

    const nextLog = join(work, 'died-before-sync-2.log');
    const next = await exportFrom(dataDir, mint.url, {
      LD_PRELOAD: shim!,
      SYNC_LOG: nextLog,
    });
    t.equal(next.status, 0, next.stderr);
    t.match(next.stderr, /a token of 4 sat an earlier export could not print/);
    const syncs = readFileSync(nextLog, 'utf8').split('\n');
    const log = syncs.findIndex((line) => line.endsWith('-wal'));
    const output = syncs.findIndex((line) => / (pipe|socket):/.test(line));
    t.ok(
      log >= 0 && output >= 0 && log < output,
      `the store's log is synced before the token goes out: ${syncs.join(' | ')}`,
    );
  },
);

t.test(
  'a command leaves the log it found: it never copies it into the database',
  async (t) => {
    // A Paygress that left its log without closing (killed, or stopped
    // after a failed sync), with one payment in it.
    const dataDir = join(work, 'left-log');
    const store = moduleUrl('../../src/store/sqlite-wallet-store.ts');
    const left = spawnSync(
      NODE,
      [
        '--input-type=module',
        '-e',
        `const { SqliteWalletStore } = await import(${JSON.stringify(store)});
         const s = new SqliteWalletStore({ dataDir: ${JSON.stringify(dataDir)} });
         s.begin({ id: 'r1', mint: 'http://127.0.0.1:1', unit: 'sat', amount: 3,
           ys: ['02' + '11'.repeat(32)], swap: { serialized: '{}', outputAmount: 3 },
           createdAt: Date.now() });
         process.exit(0);`,
      ],
      { encoding: 'utf8' },
    );
    t.equal(left.status, 0, left.stderr);
    const log = join(dataDir, `${WALLET_FILE}-wal`);
    t.ok(existsSync(log), 'a log left behind');
    const balance = spawnSync(NODE, [PAYGRESS_BIN, 'wallet', 'balance'], {
      env: {
        PATH: process.env.PATH ?? '',
        PAYGRESS_MINTS: 'http://127.0.0.1:1',
        PAYGRESS_DATA_DIR: dataDir,
      },
      encoding: 'utf8',
    });
    t.equal(balance.status, 0, balance.stderr);
    t.match(balance.stdout, /pending/, 'the payment in the log is read');
    t.ok(existsSync(log), 'and the log is still there, for the next start');
  },
);

t.test(
  'a store another process holds locked: one line that says so, not a restore',
  async (t) => {
    const mint = await startDevMint({ dleq: false });
    t.teardown(() => mint.close());
    const dataDir = join(work, 'locked');
    const store = new SqliteWalletStore({ dataDir });
    recordProofs(store, mint.url, await oneSatProofs(mint.url, 4), 4);
    store.close();
    // As a Paygress whose sync failed holds it while it shuts down.
    const holder = spawn(
      NODE,
      [
        '--input-type=module',
        '-e',
        `const { DatabaseSync } = await import('node:sqlite');
         const db = new DatabaseSync(${JSON.stringify(join(dataDir, WALLET_FILE))});
         db.exec('BEGIN IMMEDIATE');
         process.stdout.write('held\\n');
         setTimeout(() => process.exit(0), 60_000);`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    t.teardown(() => holder.kill('SIGKILL'));
    await new Promise((resolve) => holder.stdout!.once('data', resolve));
    const { status, stderr } = await exportFrom(dataDir, mint.url);
    t.equal(status, 1, 'the export fails');
    t.match(
      stderr,
      /^paygress wallet: .*wallet\.sqlite is locked by another process \(a Paygress whose sync failed holds it until it has stopped\)/m,
      'saying who holds it',
    );
    t.notMatch(stderr, /restore it from a backup/, 'and not to restore');
  },
);

t.test('balance whose output cannot be written fails, saying so', async (t) => {
  const dataDir = join(work, 'full');
  new SqliteWalletStore({ dataDir }).close();
  const out = openSync('/dev/full', 'w');
  t.teardown(() => closeSync(out));
  const run = spawnSync(NODE, [PAYGRESS_BIN, 'wallet', 'balance'], {
    env: {
      PATH: process.env.PATH ?? '',
      PAYGRESS_MINTS: 'http://127.0.0.1:1',
      PAYGRESS_DATA_DIR: dataDir,
    },
    stdio: ['ignore', out, 'pipe'],
    encoding: 'utf8',
  });
  t.equal(run.status, 1, 'exit status 1');
  t.match(run.stderr, /the output could not be written \(ENOSPC\)/);
});
