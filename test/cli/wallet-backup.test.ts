/**
 * `paygress wallet backup FILE` and `paygress wallet restore FILE`, as
 * child processes beside a real Paygress process and dev mint. A backup
 * taken while Paygress serves holds every payment made, is owner-only and
 * self-contained, and never replaces a file. A restore waits for Paygress
 * to stop, refuses a damaged or foreign file without changing anything,
 * and sets the store it replaces aside with its log: left beside the
 * restored file, SQLite would apply that log to it, a store damaged
 * beyond use, and it may hold payments taken since the backup.
 */
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  statSync,
  writeFileSync,
  writeSync,
  closeSync,
} from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import t from 'tap';
import { startDevMint } from '../../src/devmint/index.ts';
import { WALLET_FILE } from '../../src/store/sqlite-wallet-store.ts';
import { startPaygressProcess } from '../support/paygress-process.ts';
import { forwardAuth } from '../support/forward-auth.ts';
import { tempDir } from '../support/temp-dir.ts';
import { walletCommand } from '../support/wallet-command.ts';
import { mintToken } from '../support/wallet.ts';

const work = tempDir('paygress-wallet-backup-');
const mint = await startDevMint({ dleq: false });
t.teardown(() => mint.close());
const dataDir = join(work, 'data');

/** `paygress wallet ...args` on the test's data directory. */
const wallet = (...args: string[]) => walletIn(dataDir, ...args);
/** The same on another data directory. */
const walletIn = (dir: string, ...args: string[]) =>
  walletCommand(dir, mint.url, ...args);

const pay = async (base: string) =>
  (await forwardAuth(base, await mintToken(mint.url, 100))).status;

/** Unspent value in the store file, opened as a copy sees it. */
function unspentIn(file: string): number {
  const db = new DatabaseSync(file, { readOnly: true });
  try {
    return (
      db
        .prepare(
          "SELECT COALESCE(SUM(amount), 0) AS n FROM proofs WHERE state = 'unspent'",
        )
        .get() as { n: number }
    ).n;
  } finally {
    db.close();
  }
}

const paygress = await startPaygressProcess({ mintUrl: mint.url, dataDir });
t.teardown(() => paygress.kill());
const backupFile = join(work, 'wallet-backup.sqlite');

t.test('a backup while Paygress serves', async (t) => {
  for (let i = 0; i < 3; i++) t.equal(await pay(paygress.base), 200);
  const run = await wallet('backup', backupFile);
  t.equal(run.code, 0, run.err);
  t.equal(
    run.out,
    `${backupFile}: the wallet store as it was now; it holds 300 sat of ${mint.url} in unspent proofs\n`,
  );
  t.equal(statSync(backupFile).mode & 0o777, 0o600, 'owner-only');
  t.same(
    readdirSync(work).filter((f) => f.startsWith('wallet-backup')),
    ['wallet-backup.sqlite'],
    'one self-contained file: no log, journal or partial copy beside it',
  );
  const db = new DatabaseSync(backupFile, { readOnly: true });
  t.teardown(() => db.close());
  t.same(db.prepare('PRAGMA journal_mode').get(), { journal_mode: 'delete' });
  t.same(db.prepare('PRAGMA integrity_check').get(), {
    integrity_check: 'ok',
  });
  t.equal(unspentIn(backupFile), 300, 'every payment made before it');

  const again = await wallet('backup', backupFile);
  t.equal(again.code, 1, 'a second backup to the same name is refused');
  t.match(again.err, `${backupFile} exists: name a new file`);
  t.equal(unspentIn(backupFile), 300, 'and the first is untouched');

  const nowhere = await wallet('backup', join(work, 'missing', 'b.sqlite'));
  t.equal(nowhere.code, 1);
  t.equal(
    nowhere.err,
    `paygress wallet backup: ${join(work, 'missing')} does not exist: make it, or name a file in a directory that does\n`,
  );
});

t.test('a restore is refused while Paygress serves', async (t) => {
  const run = await wallet('restore', backupFile);
  t.equal(run.code, 1);
  t.match(
    run.err,
    /a Paygress is serving from .*: stop it before restoring \(nothing was changed\)/,
  );
  t.same(
    readdirSync(dataDir).filter((f) => f.startsWith('replaced-')),
    [],
    'nothing set aside',
  );
});

t.test(
  'a restore puts the backup back and sets the replaced store aside with its log',
  async (t) => {
    // Two payments after the backup, then Paygress is killed: they are in
    // the log it leaves beside the store.
    for (let i = 0; i < 2; i++) t.equal(await pay(paygress.base), 200);
    await paygress.kill();
    t.ok(existsSync(join(dataDir, `${WALLET_FILE}-wal`)), 'a log is left');

    // Given a configuration file (the environment names the store here),
    // the commands it prints to read the replaced store name it too.
    const config = join(work, 'paygress.yaml');
    writeFileSync(config, 'logLevel: info\n');
    const run = await wallet('restore', backupFile, '--config', config);
    t.equal(run.code, 0, run.err);
    const aside = /the store it replaced, with its log, is in (\S+);/.exec(
      run.out,
    )?.[1];
    t.ok(aside, run.out);
    t.match(
      run.out,
      `PAYGRESS_DATA_DIR=${aside} paygress wallet balance --config=${config}\n`,
    );
    t.match(run.out, 'it holds 300 sat of');
    t.same(
      readdirSync(aside!).sort(),
      [WALLET_FILE, `${WALLET_FILE}-shm`, `${WALLET_FILE}-wal`],
      'the replaced store with its log and its index',
    );
    t.notOk(
      existsSync(join(dataDir, `${WALLET_FILE}-wal`)),
      'no log beside the restored store',
    );
    t.equal(
      statSync(join(dataDir, WALLET_FILE)).mode & 0o777,
      0o600,
      'owner-only',
    );

    const restored = await wallet('balance');
    t.equal(restored.code, 0, restored.err);
    t.match(restored.out, /\t300 sat available/, 'the backup is the store');
    const replaced = await walletIn(aside!, 'balance');
    t.match(
      replaced.out,
      /\t500 sat available/,
      'the replaced store still holds the two payments since the backup',
    );

    await paygress.start();
    t.equal(await pay(paygress.base), 200, 'Paygress serves from it');
    const db = new DatabaseSync(join(dataDir, WALLET_FILE), {
      readOnly: true,
    });
    t.teardown(() => db.close());
    t.same(db.prepare('PRAGMA integrity_check').get(), {
      integrity_check: 'ok',
    });
  },
);

t.test('a damaged or foreign file is refused, nothing changed', async (t) => {
  await paygress.stop();
  const before = readdirSync(dataDir).sort();
  const damaged = join(work, 'damaged.sqlite');
  copyFileSync(backupFile, damaged);
  // Garbage over the pages after the first two (the schema stays readable).
  const size = statSync(damaged).size;
  const fd = openSync(damaged, 'r+');
  writeSync(fd, Buffer.alloc(size - 8192, 0x5a), 0, size - 8192, 8192);
  closeSync(fd);
  const foreign = join(work, 'foreign.sqlite');
  const other = new DatabaseSync(foreign);
  other.exec('CREATE TABLE notes (text TEXT)');
  other.close();
  const text = join(work, 'text.sqlite');
  writeFileSync(text, 'not a database at all, just some words in a file\n');

  for (const [file, why] of [
    [damaged, /it is damaged|malformed/],
    [foreign, /it is not a Paygress wallet store/],
    [text, /not a database/],
  ] as const) {
    const run = await wallet('restore', file);
    t.equal(run.code, 1, file);
    t.match(run.err, why, `${file}: ${run.err}`);
    t.match(run.err, /nothing was changed/);
    t.same(readdirSync(dataDir).sort(), before, 'the data directory as it was');
  }
  t.equal(
    (await wallet('restore', join(work, 'missing.sqlite'))).code,
    1,
    'a missing file',
  );

  // The same damage in a data directory: the commands say so, and how to
  // restore, rather than read numbers off it.
  const broken = join(work, 'broken');
  mkdirSync(broken, { mode: 0o700 });
  copyFileSync(damaged, join(broken, WALLET_FILE));
  for (const command of ['balance', 'export']) {
    const run = await walletIn(broken, command);
    t.equal(run.code, 1, command);
    t.match(
      run.err,
      /^paygress wallet: .*wallet\.sqlite(:? is not a Paygress wallet store, or)? is damaged \(.*\): restore it from a backup \(paygress wallet restore; docs\/wallet\.md\)/,
      `${command}: ${run.err}`,
    );
    t.equal(run.out, '', 'and prints nothing');
  }
});

t.test('a restore onto a new volume', async (t) => {
  const fresh = join(work, 'fresh', 'data');
  const run = await walletIn(fresh, 'restore', backupFile);
  t.equal(run.code, 0, run.err);
  t.notMatch(run.out, /replaced/, 'nothing to set aside');
  t.equal(statSync(fresh).mode & 0o777, 0o700, 'the directory made 0700');
  t.match((await walletIn(fresh, 'balance')).out, /\t300 sat available/);
});
