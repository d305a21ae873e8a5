/**
 * `paygress wallet restore` cut short, and what restore and backup refuse,
 * as child processes on stores written here (no Paygress process: the
 * mint's URL is configuration only). A restore cut short between moving
 * the replaced store's files leaves a marker: nothing opens the store
 * beside it (Paygress would make an empty store and SQLite delete the
 * log without its database), and the next restore finishes it, the
 * replaced store whole in one directory. A backup beside a process that
 * commits all the time ends.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import {
  copyFileSync,
  existsSync,
  linkSync,
  mkdirSync,
  readdirSync,
  renameSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { basename, join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { lockExport } from '../../src/store/data-dir-lock.ts';
import {
  SqliteWalletStore,
  WALLET_FILE,
} from '../../src/store/sqlite-wallet-store.ts';
import { NODE } from '../support/paygress-process.ts';
import { tempDir } from '../support/temp-dir.ts';
import { walletCommand } from '../support/wallet-command.ts';

const work = tempDir('paygress-wallet-restore-');
const STORE_MODULE = fileURLToPath(
  new URL('../../src/store/sqlite-wallet-store.ts', import.meta.url),
);
const MINT = 'http://127.0.0.1:1';
const walletIn = (dir: string, ...args: string[]) =>
  walletCommand(dir, MINT, ...args);

/**
 * Records a payment of `amount` sat in the store at `dir` and exits
 * without closing it, as Paygress killed does: the payment is in the log.
 */
async function payIntoLog(dir: string, amount: number): Promise<void> {
  const writer = spawn(
    NODE,
    [
      '--input-type=module',
      '-e',
      `const { SqliteWalletStore } = await import(${JSON.stringify(STORE_MODULE)});
       const { randomBytes, randomUUID } = await import('node:crypto');
       const store = new SqliteWalletStore({ dataDir: ${JSON.stringify(dir)} });
       const id = randomUUID();
       store.begin({ id, mint: ${JSON.stringify(MINT)}, unit: 'sat', amount: ${amount},
         ys: ['02' + randomBytes(32).toString('hex')],
         swap: { serialized: '{}', outputAmount: ${amount} }, createdAt: Date.now() });
       store.complete(id, [{ id: '00ad268c4d1f5826', amount: ${amount},
         secret: randomBytes(32).toString('hex'), C: '02' + randomBytes(32).toString('hex') }], true);
       store.delivered(id);
       await store.durable();
       process.exit(0);`,
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const [code] = (await once(writer, 'exit')) as [number | null];
  // Thrown, not asserted: the set-up runs before any test.
  if (code !== 0) throw new Error(`the store writer exited ${code}`);
}

// A backup of a store holding 300 sat.
const seeded = join(work, 'seeded');
await payIntoLog(seeded, 300);
const backupFile = join(work, 'backup.sqlite');
const seededBackup = await walletIn(seeded, 'backup', backupFile);
if (seededBackup.code !== 0) throw new Error(seededBackup.err);

/** A store restored from the backup, with 7 sat more in its log. */
async function storeWithLog(dir: string): Promise<void> {
  const restored = await walletIn(dir, 'restore', backupFile);
  if (restored.code !== 0) throw new Error(restored.err);
  await payIntoLog(dir, 7);
}

t.test(
  'a backup of a large store while another process commits all the time',
  async (t) => {
    const busy = join(work, 'busy');
    t.equal((await walletIn(busy, 'restore', backupFile)).code, 0);
    // In WAL mode, as Paygress opens it (a restored file is not).
    new SqliteWalletStore({ dataDir: busy }).close();
    // About 40 MB of proofs, spent long ago.
    const db = new DatabaseSync(join(busy, WALLET_FILE));
    db.exec('BEGIN');
    db.prepare(
      `INSERT INTO proofs (y, redemption_id, mint, unit, keyset_id, amount, secret, c, state, changed_at)
       WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40000)
       SELECT 'y' || i, (SELECT id FROM redemptions LIMIT 1), 'http://127.0.0.1:1', 'sat',
         '00aa', 1, hex(randomblob(400)), hex(randomblob(33)), 'spent', 0
       FROM n`,
    ).run();
    db.exec('COMMIT');
    db.close();
    // A commit every 10 ms, as a Paygress taking payments makes them.
    const writer = spawn(
      NODE,
      [
        '--input-type=module',
        '-e',
        `const { DatabaseSync } = await import('node:sqlite');
         const db = new DatabaseSync(${JSON.stringify(join(busy, WALLET_FILE))}, { timeout: 5000 });
         let n = 0;
         setInterval(() => db.prepare("UPDATE proofs SET changed_at = ? WHERE y = 'y1'").run(++n), 10);
         process.stdout.write('writing\\n');`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    t.teardown(() => writer.kill('SIGKILL'));
    await once(writer.stdout, 'data');
    const target = join(work, 'busy-backup.sqlite');
    const started = Date.now();
    const run = await walletIn(busy, 'backup', target);
    t.equal(run.code, 0, run.err);
    t.ok(Date.now() - started < 20_000, 'it ends');
    t.ok(statSync(target).size > 20e6, 'with the whole store');
  },
);

t.test(
  'a restore cut short: nothing opens the store until a restore finishes it',
  async (t) => {
    const dir = join(work, 'cut-short');
    await storeWithLog(dir);
    const log = join(dir, `${WALLET_FILE}-wal`);
    const logSize = statSync(log).size;
    t.ok(logSize > 0, 'the log holds the payment');
    // As a restore killed after moving the database aside: the marker,
    // its copy, and the log without its database.
    const aside = join(dir, 'replaced-cut-short');
    mkdirSync(aside, { mode: 0o700 });
    writeFileSync(
      join(aside, 'restore.json'),
      JSON.stringify({ moving: true }),
    );
    writeFileSync(
      join(dir, 'restore.json'),
      JSON.stringify({ aside: basename(aside) }),
    );
    renameSync(join(dir, WALLET_FILE), join(aside, WALLET_FILE));
    copyFileSync(backupFile, join(dir, `${WALLET_FILE}.restoring`));

    const balance = await walletIn(dir, 'balance');
    t.equal(balance.code, 1);
    t.match(
      balance.err,
      `a restore of the wallet store is under way or was cut short (${join(dir, 'restore.json')} is there; the store it was replacing is moving into ${aside}, part of it may still be here): run paygress wallet restore again, which finishes it first`,
    );
    t.throws(
      () => new SqliteWalletStore({ dataDir: dir, serving: true }),
      /a restore of the wallet store is under way or was cut short/,
      'Paygress does not start on it',
    );
    t.equal(statSync(log).size, logSize, 'and the log is left as it is');

    const again = await walletIn(dir, 'restore', backupFile);
    t.equal(again.code, 0, again.err);
    t.match(
      again.err,
      `a restore cut short was finished first: the store it was replacing is in ${aside}, whole`,
    );
    t.ok(existsSync(join(aside, `${WALLET_FILE}-wal`)), 'with its log');
    t.match(
      (await walletIn(aside, 'balance')).out,
      /\t307 sat available/,
      'the payment in the log kept',
    );
    t.match((await walletIn(dir, 'balance')).out, /\t300 sat available/);
    t.notOk(existsSync(join(dir, 'restore.json')), 'the marker gone');
  },
);

t.test('a log without its database is not opened', async (t) => {
  const dir = join(work, 'orphan-log');
  await storeWithLog(dir);
  renameSync(join(dir, WALLET_FILE), join(work, 'orphan-main.sqlite'));
  const log = join(dir, `${WALLET_FILE}-wal`);
  const logSize = statSync(log).size;
  t.throws(
    () => new SqliteWalletStore({ dataDir: dir, serving: true }),
    /wallet\.sqlite-wal is there without .*wallet\.sqlite: a log without its database/,
  );
  t.equal((await walletIn(dir, 'balance')).code, 1, 'nor by a command');
  t.equal(statSync(log).size, logSize, 'the log is left as it is');
});

t.test(
  'restore through a symbolic link takes the log beside its file',
  async (t) => {
    const dir = join(work, 'linked-source');
    await storeWithLog(dir);
    const link = join(work, 'link.sqlite');
    symlinkSync(join(dir, WALLET_FILE), link);
    const run = await walletIn(join(work, 'linked-target'), 'restore', link);
    t.equal(run.code, 0, run.err);
    t.match(run.out, /it holds 307 sat of/, 'the payment in the log included');
  },
);

t.test('what restore and backup refuse', async (t) => {
  const dir = join(work, 'refusals');
  t.equal((await walletIn(dir, 'restore', backupFile)).code, 0);
  copyFileSync(backupFile, join(dir, `${WALLET_FILE}.restoring`));
  const own = await walletIn(
    dir,
    'restore',
    join(dir, `${WALLET_FILE}.restoring`),
  );
  t.equal(own.code, 1);
  t.match(
    own.err,
    /is one of the store's own files: restore from a backup kept elsewhere; nothing was changed/,
  );
  t.ok(
    existsSync(join(dir, `${WALLET_FILE}.restoring`)),
    'and it is still there',
  );

  const inside = await walletIn(
    dir,
    'backup',
    join(dir, `${WALLET_FILE}-journal`),
  );
  t.equal(inside.code, 1);
  t.match(inside.err, /is a name the store itself uses/);
  // Through a link to the data directory, and the marker's name.
  symlinkSync(dir, join(work, 'refusals-link'));
  for (const name of [`${WALLET_FILE}.restoring`, 'restore.json']) {
    const linked = await walletIn(
      dir,
      'backup',
      join(work, 'refusals-link', name),
    );
    t.equal(linked.code, 1, name);
    t.match(linked.err, /is a name the store itself uses/);
  }
  const beside = await walletIn(dir, 'backup', join(dir, `${WALLET_FILE}.bak`));
  t.equal(beside.code, 0, 'a name of its own beside the store is fine');

  // Another wallet command running (as an export holds its lock).
  const held = lockExport(dir);
  t.teardown(() => held.release());
  const busy = await walletIn(dir, 'backup', join(work, 'while-held.sqlite'));
  t.equal(busy.code, 1);
  t.match(
    busy.err,
    /another paygress wallet command \(an export, a backup, a restore\) is running/,
  );
  t.notOk(existsSync(join(work, 'while-held.sqlite')));
});

t.test(
  'a restore cut short, then one of a bad file: nothing changes, the store stays closed',
  async (t) => {
    const dir = join(work, 'cut-short-bad');
    await storeWithLog(dir);
    // Cut short right after its marker: nothing moved yet.
    const aside = join(dir, 'replaced-later');
    writeFileSync(
      join(dir, 'restore.json'),
      JSON.stringify({ aside: basename(aside) }),
    );
    copyFileSync(backupFile, join(dir, `${WALLET_FILE}.restoring`));
    const bad = join(work, 'not-a-store.txt');
    writeFileSync(bad, 'some words, not a database\n');

    const run = await walletIn(dir, 'restore', bad);
    t.equal(run.code, 1);
    t.match(run.err, /not a database; nothing was changed/);
    t.ok(existsSync(join(dir, 'restore.json')), 'the marker stays');
    t.ok(existsSync(join(dir, WALLET_FILE)), 'the store stays where it is');
    t.notOk(existsSync(aside), 'nothing moved');
    t.equal((await walletIn(dir, 'balance')).code, 1, 'and closed');

    const good = await walletIn(dir, 'restore', backupFile);
    t.equal(good.code, 0, good.err);
    t.match(
      (await walletIn(aside, 'balance')).out,
      /\t307 sat available/,
      'the good one then finishes the first, the old store whole',
    );
  },
);

t.test('a marker cut short as it was written moves nothing', async (t) => {
  const dir = join(work, 'empty-marker');
  await storeWithLog(dir);
  writeFileSync(join(dir, 'restore.json'), '');
  const run = await walletIn(dir, 'restore', backupFile);
  t.equal(run.code, 0, run.err);
  t.match(run.err, 'a restore cut short before it moved anything was dropped');
  const aside = /is in (\S+); it may hold payments/.exec(run.out)?.[1];
  t.ok(aside?.startsWith(join(dir, 'replaced-')), run.out);
  t.match((await walletIn(aside!, 'balance')).out, /\t307 sat available/);
});

t.test('a marker naming a directory no restore makes', async (t) => {
  const dir = join(work, 'planted-marker');
  await storeWithLog(dir);
  const elsewhere = join(work, 'elsewhere');
  writeFileSync(
    join(dir, 'restore.json'),
    JSON.stringify({ aside: elsewhere }),
  );
  for (const args of [['balance'], ['restore', backupFile]]) {
    const run = await walletIn(dir, ...args);
    t.equal(run.code, 1, args.join(' '));
    t.match(
      run.err,
      `names ${elsewhere}, which is not a directory a restore makes`,
    );
  }
  t.notOk(existsSync(elsewhere), 'nothing moved there');
  t.ok(existsSync(join(dir, WALLET_FILE)), 'the store where it was');
});

t.test(
  'the directory a store is moving into is not opened meanwhile',
  async (t) => {
    const dir = join(work, 'moving-into');
    await storeWithLog(dir);
    writeFileSync(join(dir, 'restore.json'), JSON.stringify({ moving: true }));
    const run = await walletIn(dir, 'balance');
    t.equal(run.code, 1);
    t.match(
      run.err,
      /a restore is moving a store into .*, or was cut short doing so/,
    );
    const restore = await walletIn(dir, 'restore', backupFile);
    t.equal(restore.code, 1, 'nor restored into');
    t.match(
      restore.err,
      /is a directory a restore is moving a store into: run paygress wallet restore on .*; nothing was changed/,
    );
    t.ok(existsSync(join(dir, 'restore.json')), 'its marker stays');
  },
);

/**
 * A restore cut short after linking the database into its directory and
 * before unlinking it here (the same file in both), the log not moved:
 * what a restore run again must finish.
 */
function cutShortInMove(dir: string): string {
  const aside = join(dir, 'replaced-linked');
  mkdirSync(aside, { mode: 0o700 });
  writeFileSync(join(aside, 'restore.json'), JSON.stringify({ moving: true }));
  writeFileSync(
    join(dir, 'restore.json'),
    JSON.stringify({ aside: basename(aside) }),
  );
  linkSync(join(dir, WALLET_FILE), join(aside, WALLET_FILE));
  copyFileSync(backupFile, join(dir, `${WALLET_FILE}.restoring`));
  return aside;
}

t.test('a move cut short between its link and its unlink', async (t) => {
  const dir = join(work, 'link-unlink');
  await storeWithLog(dir);
  const aside = cutShortInMove(dir);
  const run = await walletIn(dir, 'restore', backupFile);
  t.equal(run.code, 0, run.err);
  t.match((await walletIn(aside, 'balance')).out, /\t307 sat available/);
  t.match((await walletIn(dir, 'balance')).out, /\t300 sat available/);
});

t.test('a restore cut short, the data directory then moved', async (t) => {
  const before = join(work, 'mounted-here');
  await storeWithLog(before);
  cutShortInMove(before);
  const dir = join(work, 'mounted-there');
  renameSync(before, dir);
  const run = await walletIn(dir, 'restore', backupFile);
  t.equal(run.code, 0, run.err);
  t.match(
    (await walletIn(join(dir, 'replaced-linked'), 'balance')).out,
    /\t307 sat available/,
    'finished in the directory where it now is',
  );
});

t.test('a marker naming a link is not followed', async (t) => {
  const dir = join(work, 'linked-aside');
  await storeWithLog(dir);
  const outside = join(work, 'outside');
  mkdirSync(outside);
  symlinkSync(outside, join(dir, 'replaced-x'));
  writeFileSync(
    join(dir, 'restore.json'),
    JSON.stringify({ aside: 'replaced-x' }),
  );
  copyFileSync(backupFile, join(dir, `${WALLET_FILE}.restoring`));
  const run = await walletIn(dir, 'restore', backupFile);
  t.equal(run.code, 1);
  t.match(
    run.err,
    /names replaced-x, which is not a directory a restore makes/,
  );
  t.same(readdirSync(outside), [], 'nothing moved through it');
  t.ok(existsSync(join(dir, WALLET_FILE)));
});
