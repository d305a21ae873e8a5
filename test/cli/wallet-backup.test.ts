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
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  symlinkSync,
  statSync,
  writeFileSync,
  writeSync,
  closeSync,
} from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { startDevMint } from '../../src/devmint/index.ts';
import { lockExport } from '../../src/store/data-dir-lock.ts';
import {
  SqliteWalletStore,
  WALLET_FILE,
} from '../../src/store/sqlite-wallet-store.ts';
import {
  NODE,
  PAYGRESS_BIN,
  startPaygressProcess,
} from '../support/paygress-process.ts';
import { forwardAuth } from '../support/forward-auth.ts';
import { tempDir } from '../support/temp-dir.ts';
import { mintToken } from '../support/wallet.ts';

const work = tempDir('paygress-wallet-backup-');
const STORE_MODULE = fileURLToPath(
  new URL('../../src/store/sqlite-wallet-store.ts', import.meta.url),
);
const mint = await startDevMint({ dleq: false });
t.teardown(() => mint.close());
const dataDir = join(work, 'data');

/**
 * Runs `paygress wallet ...args` on the test's data directory. Not with
 * spawnSync: the dev mint runs in this process, and an event loop stopped
 * meanwhile lets its idle connections close under their clients.
 */
function wallet(...args: string[]) {
  return walletIn(dataDir, ...args);
}

/** {@link wallet} on another data directory. */
async function walletIn(dir: string, ...args: string[]) {
  const child = spawn(NODE, [PAYGRESS_BIN, 'wallet', ...args], {
    env: {
      PATH: process.env.PATH ?? '',
      PAYGRESS_MINTS: mint.url,
      PAYGRESS_DATA_DIR: dir,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  // A backup that never ends fails the test, not the run.
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const [code] = (await once(child, 'close')) as [number | null];
  clearTimeout(timer);
  return { code, out, err };
}

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
});

t.test('a restore is refused while Paygress serves', async (t) => {
  const run = await wallet('restore', backupFile);
  t.equal(run.code, 1);
  t.match(run.err, /is in use by another Paygress process/);
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

    const run = await wallet('restore', backupFile);
    t.equal(run.code, 0, run.err);
    const aside = /the store it replaced, with its log, is in (\S+);/.exec(
      run.out,
    )?.[1];
    t.ok(aside, run.out);
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

t.test('a restore onto a new volume', async (t) => {
  const fresh = join(work, 'fresh', 'data');
  const run = await walletIn(fresh, 'restore', backupFile);
  t.equal(run.code, 0, run.err);
  t.notMatch(run.out, /replaced/, 'nothing to set aside');
  t.equal(statSync(fresh).mode & 0o777, 0o700, 'the directory made 0700');
  t.match((await walletIn(fresh, 'balance')).out, /\t300 sat available/);
});

/**
 * A store restored from the backup, with a payment of 7 sat more in the
 * log a process left without closing (as Paygress killed leaves it).
 */
async function storeWithLog(dir: string): Promise<void> {
  t.equal((await walletIn(dir, 'restore', backupFile)).code, 0);
  const writer = spawn(
    NODE,
    [
      '--input-type=module',
      '-e',
      `const { SqliteWalletStore } = await import(${JSON.stringify(STORE_MODULE)});
       const { randomBytes, randomUUID } = await import('node:crypto');
       const store = new SqliteWalletStore({ dataDir: ${JSON.stringify(dir)} });
       const id = randomUUID();
       store.begin({ id, mint: ${JSON.stringify(mint.url)}, unit: 'sat', amount: 7,
         ys: ['02' + randomBytes(32).toString('hex')],
         swap: { serialized: '{}', outputAmount: 7 }, createdAt: Date.now() });
       store.complete(id, [{ id: '00ad268c4d1f5826', amount: 7,
         secret: randomBytes(32).toString('hex'), C: '02' + randomBytes(32).toString('hex') }], true);
       store.delivered(id);
       await store.durable();
       process.exit(0);`,
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const [code] = (await once(writer, 'exit')) as [number | null];
  t.equal(code, 0, 'a payment in the log');
}

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
    writeFileSync(join(dir, 'restore.json'), JSON.stringify({ aside }));
    renameSync(join(dir, WALLET_FILE), join(aside, WALLET_FILE));
    copyFileSync(backupFile, join(dir, `${WALLET_FILE}.restoring`));

    const balance = await walletIn(dir, 'balance');
    t.equal(balance.code, 1);
    t.match(
      balance.err,
      `a restore of the wallet store was cut short (${join(dir, 'restore.json')} is there): run paygress wallet restore again, which finishes it first; the store it was replacing is in ${aside}`,
    );
    t.throws(
      () => new SqliteWalletStore({ dataDir: dir, serving: true }),
      /a restore of the wallet store was cut short/,
      'Paygress does not start on it',
    );
    t.equal(statSync(log).size, logSize, 'and the log is left as it is');

    const again = await walletIn(dir, 'restore', backupFile);
    t.equal(again.code, 0, again.err);
    t.match(
      again.err,
      `a restore cut short was finished first: the store it was replacing is whole in ${aside}`,
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
    /is the copy a restore makes: restore from the backup itself; nothing was changed/,
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

  // Another wallet command running (as an export holds its lock).
  const held = lockExport(dir);
  t.teardown(() => held.release());
  const busy = await walletIn(dir, 'backup', join(work, 'while-held.sqlite'));
  t.equal(busy.code, 1);
  t.match(
    busy.err,
    /another paygress wallet export, backup or restore is running/,
  );
  t.notOk(existsSync(join(work, 'while-held.sqlite')));
});
