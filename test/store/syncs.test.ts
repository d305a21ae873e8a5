/**
 * Which of the store's writes wait for the disk, seen in the system calls:
 * the store runs in a child process with test/support/sync-shim.c
 * preloaded, which logs every fsync with the path synced, between marks
 * the child writes to the same log. A swap's record is on disk once
 * `durable()` resolves, and its commit did not stop the process for the
 * disk; what a power cut may lose without losing money (a completion, the
 * delivery mark, a release, proofs marked spent) is not synced; an export
 * is, off the event loop too, and a refund as it commits. Payments whose records were written while a sync ran share the next
 * one. The log synced is the one SQLite writes, a symbolic link to the
 * wallet file followed, even moved aside; after a sync that failed,
 * nothing is written again, a payment that was waiting for a sync
 * included, and closing the store does not copy the log into the
 * database.
 * Skipped where there is no C compiler to build the shim.
 */
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { WALLET_FILE } from '../../src/store/sqlite-wallet-store.ts';
import { buildSyncShim } from '../support/sync-shim.ts';

const STORE = new URL('../../src/store/sqlite-wallet-store.ts', import.meta.url)
  .pathname;

const CHILD = `
import {
  appendFileSync, closeSync, openSync, renameSync, statSync, writeFileSync,
  writeSync,
} from 'node:fs';
import { randomBytes, randomUUID } from 'node:crypto';
import { DatabaseSync } from 'node:sqlite';
import { SqliteWalletStore } from ${JSON.stringify(STORE)};

const mark = (name) => appendFileSync(process.env.SYNC_LOG, 'mark ' + name + '\\n');
const y = () => '02' + randomBytes(32).toString('hex');
const record = (ys) => ({
  id: randomUUID(), mint: 'http://127.0.0.1:1', unit: 'sat', amount: 3, ys,
  swap: { serialized: '{}', outputAmount: 3 }, createdAt: Date.now(),
});
const proof = (amount) => ({
  id: '00ad268c4d1f5826', amount,
  secret: randomBytes(32).toString('hex'), C: y(),
});

const store = new SqliteWalletStore({
  dataDir: process.argv[2],
  // Holding the data directory's lock, as Paygress serving from it does.
  serving: process.argv[3] === 'failed commit',
  onFailedCut: (reason) => mark('not cut: ' + reason),
});
mark('opened');
const outcome = (name) => [
  () => mark(name + ' durable'),
  (err) => mark(name + ' refused: ' + err.code + ': ' + err.message),
];
if (process.argv[3] === 'fails') {
  // From now on the first sync of the log fails (test/support/sync-shim.c),
  // and each takes 200 ms: the second payment asks while it runs.
  process.env.FAIL_SYNC = '-wal';
  process.env.SLOW_SYNC_US = '200000';
  store.begin(record([y()]));
  const first = store.durable().then(...outcome('first'));
  await new Promise((resolve) => setTimeout(resolve, 50));
  store.begin(record([y()]));
  const second = store.durable().then(...outcome('second'));
  await Promise.all([first, second]);
  process.env.SLOW_SYNC_US = '0';
  await store.durable().then(...outcome('third'));
  try {
    store.useGrant('a grant');
    mark('grant used');
  } catch (err) {
    mark('grant refused: ' + err.code);
  }
  mark('failed ' + store.failed);
} else if (process.argv[3] === 'sqlite fails') {
  const paid = record([y()]);
  store.begin(paid);
  await store.durable();
  store.complete(paid.id, [proof(1)], false);
  // A sync of SQLite's own (a refund's commit) is the one that fails.
  process.env.FAIL_SYNC = '-wal';
  try {
    store.refund(paid.id);
    mark('refunded');
  } catch (err) {
    mark('refund refused: ' + err.code);
  }
  mark('failed ' + store.failed);
  try {
    store.begin(record([y()]));
    mark('next begun');
  } catch (err) {
    mark('next refused: ' + err.code + ': ' + err.message);
  }
} else if (process.argv[3] === 'grant fails') {
  // A statement committed on its own: SQLite syncs it, and that fails.
  process.env.FAIL_SYNC = '-wal';
  for (const grant of ['first grant', 'second grant']) {
    try {
      store.useGrant(grant);
      mark(grant + ' used');
    } catch (err) {
      mark(grant + ' refused: ' + err.code);
    }
  }
  mark('failed ' + store.failed);
} else if (process.argv[3] === 'together') {
  // Each sync takes 200 ms: three payments write their records while the
  // first one's runs, and a fifth while theirs does.
  process.env.SLOW_SYNC_US = '200000';
  store.begin(record([y()]));
  const first = store.durable().then(() => mark('first durable'));
  await new Promise((resolve) => setTimeout(resolve, 50));
  const others = [1, 2, 3].map(() => {
    store.begin(record([y()]));
    return store.durable();
  });
  await first;
  await new Promise((resolve) => setTimeout(resolve, 50));
  store.begin(record([y()]));
  const last = store.durable();
  await Promise.all(others);
  mark('others durable');
  await last;
  mark('last durable');
} else if (process.argv[3] === 'lost pages') {
  // Five payments on disk, then a sixth whose sync fails; what the disk
  // dropped is then gone from the page cache too (zeros, read as a torn
  // log), and Paygress closes the store and exits.
  const wal = process.argv[2] + '/wallet.sqlite-wal';
  for (let i = 0; i < 5; i++) {
    store.begin(record([y()]));
    await store.durable();
  }
  const synced = statSync(wal).size;
  process.env.FAIL_SYNC = '-wal';
  store.begin(record([y()]));
  await store.durable().then(...outcome('sixth'));
  const size = statSync(wal).size;
  const fd = openSync(wal, 'r+');
  writeSync(fd, Buffer.alloc(size - synced), 0, size - synced, synced);
  closeSync(fd);
  store.close();
  mark('closed');
  process.exit(75);
} else if (process.argv[3] === 'failed commit') {
  // A payment stored, then a refund and a grant's use whose commits
  // SQLite syncs itself, and the first of those syncs fails.
  const paid = record([y()]);
  store.begin(paid);
  await store.durable();
  store.complete(paid.id, [proof(1), proof(2)], false);
  process.env.FAIL_SYNC = '-wal';
  for (const [name, write] of [
    ['refund', () => store.refund(paid.id)],
    ['grant', () => store.useGrant('a grant')],
  ]) {
    try {
      write();
      mark(name + ' done');
    } catch (err) {
      mark(name + ' refused: ' + err.code);
    }
  }
  // A \`paygress wallet\` command, which takes no data directory lock,
  // writing while this process shuts down: SQLite's write lock is held
  // from the failure on (a commit of the command's could otherwise be
  // cut off the log, or checkpoint it into the database).
  await null;
  const other = new DatabaseSync(process.argv[2] + '/wallet.sqlite', {
    timeout: 0,
  });
  try {
    other.exec('BEGIN IMMEDIATE');
    mark('a command could write');
  } catch (err) {
    mark('a command cannot write: ' + err.message);
  }
  store.close();
  // Another Paygress on the same directory, before this one has exited.
  try {
    new SqliteWalletStore({ dataDir: process.argv[2], serving: true }).close();
    mark('another opened it');
  } catch (err) {
    mark('another refused: ' + err.message.split(':')[0]);
  }
  process.exit(75);
} else if (process.argv[3] === 'lock kept') {
  // A \`paygress wallet\` command holds SQLite's write lock as a sync
  // fails, for 300 ms: the failed store takes the lock once it is free,
  // without stopping the event loop meanwhile.
  store.begin(record([y()]));
  const command = new DatabaseSync(process.argv[2] + '/wallet.sqlite', {
    timeout: 0,
  });
  command.exec('BEGIN IMMEDIATE');
  process.env.FAIL_SYNC = '-wal';
  const started = Date.now();
  await store.durable().catch(() => mark('sync failed'));
  let ticks = 0;
  const ticking = setInterval(() => ticks++, 10);
  await new Promise((resolve) => setTimeout(resolve, 300));
  clearInterval(ticking);
  mark(Date.now() - started < 600 && ticks >= 10 ? 'the loop ran on' : 'the loop stopped');
  command.exec('ROLLBACK');
  await new Promise((resolve) => setTimeout(resolve, 100));
  try {
    command.exec('BEGIN IMMEDIATE');
    mark('the command could write again');
  } catch (err) {
    mark('the command cannot write: ' + err.message);
  }
  store.close();
  mark('closed');
  process.exit(75);
} else if (process.argv[3] === 'cut refused') {
  // A refund whose commit fails to sync, and an index whose two headers
  // disagree at the close (made so once the failed store holds the write
  // lock: before, SQLite would rebuild the index from the log, the
  // failed commit with it): the log is not cut, and the store says so.
  const paid = record([y()]);
  store.begin(paid);
  await store.durable();
  store.complete(paid.id, [proof(1)], false);
  process.env.FAIL_SYNC = '-wal';
  try {
    store.refund(paid.id);
    mark('refunded');
  } catch (err) {
    mark('refund refused: ' + err.code);
  }
  await new Promise((resolve) => setTimeout(resolve, 0));
  const shm = openSync(process.argv[2] + '/wallet.sqlite-shm', 'r+');
  writeSync(shm, Buffer.from([0xff]), 0, 1, 48 + 16);
  closeSync(shm);
  store.close();
  mark('closed');
  process.exit(75);
} else if (process.argv[3] === 'renamed') {
  // Someone moves the log aside and leaves an empty file in its name.
  const log = process.argv[2] + '/wallet.sqlite-wal';
  renameSync(log, log + '.aside');
  writeFileSync(log, '');
  store.begin(record([y()]));
  await store.durable();
  mark('durable');
} else {
  const paid = record([y(), y()]);
  store.begin(paid);
  mark('begun');
  await store.durable();
  mark('durable');
  const refused = record([y()]);
  store.begin(refused);
  mark('begun again');
  await store.durable();
  mark('durable again');
  store.complete(paid.id, [proof(1), proof(2)], true);
  mark('completed');
  store.delivered(paid.id);
  mark('delivered');
  store.release(refused.id, true);
  mark('released');
  const ys = store.unspent(paid.mint, 'sat').map((p) => p.y);
  const refunded = record([y()]);
  store.begin(refunded);
  await store.durable();
  store.complete(refunded.id, [proof(3)], false);
  mark('owed');
  store.markSpent(ys.slice(0, 1));
  mark('marked spent');
  await store.exportProofs(ys, () => 'a token');
  mark('exported');
  store.refund(refunded.id);
  mark('refunded');
}
store.close();
`;

const work = mkdtempSync(join(tmpdir(), 'paygress-syncs-'));
t.teardown(() => rmSync(work, { recursive: true, force: true }));
const shim = buildSyncShim(work);

/**
 * Runs the child on `dataDir`; the paths synced before each of its marks,
 * and those of them the event loop (the main thread) waited for.
 */
function run(
  dataDir: string,
  scenario = 'all',
  status = 0,
): {
  marks: string[];
  syncs: Map<string, string[]>;
  onLoop: Map<string, string[]>;
} {
  const log = join(work, `syncs-${scenario}.log`);
  const child = join(work, 'child.ts');
  writeFileSync(child, CHILD);
  const ran = spawnSync(process.execPath, [child, dataDir, scenario], {
    env: { ...process.env, LD_PRELOAD: shim!, SYNC_LOG: log },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  if (ran.status !== status) {
    throw new Error(`the child exited ${ran.status ?? ran.signal}`);
  }
  const marks: string[] = [];
  const syncs = new Map<string, string[]>();
  const onLoop = new Map<string, string[]>();
  let synced: string[] = [];
  let waited: string[] = [];
  for (const line of readFileSync(log, 'utf8').trim().split('\n')) {
    if (line.startsWith('mark ')) {
      marks.push(line.slice(5));
      syncs.set(line.slice(5), synced);
      onLoop.set(line.slice(5), waited);
      synced = [];
      waited = [];
    } else {
      // The call, the thread that made it, the path.
      const [, thread, ...path] = line.split(' ');
      synced.push(path.join(' '));
      if (thread === 'main') waited.push(path.join(' '));
    }
  }
  return { marks, syncs, onLoop };
}

const skip = shim ? false : 'no C compiler (cc) to build the sync shim';

/** The store opened again, as the next start opens it, and found whole. */
function reopened(t: Test, dataDir: string): DatabaseSync {
  const db = new DatabaseSync(join(dataDir, WALLET_FILE));
  t.teardown(() => db.close());
  t.same(
    db.prepare('PRAGMA integrity_check').all(),
    [{ integrity_check: 'ok' }],
    'the database is whole',
  );
  return db;
}

t.test(
  'the store syncs what money depends on, off the event loop',
  { skip },
  async (t) => {
    const dataDir = join(work, 'data');
    const { syncs, onLoop } = run(dataDir);
    const after = (mark: string) =>
      syncs.get(mark)?.map((path) => path.replace(dataDir, 'DIR'));
    const wal = `DIR/${WALLET_FILE}-wal`;
    t.same(after('begun'), [], 'begin: the commit did not wait');
    t.same(
      after('durable'),
      [wal, 'DIR'],
      'durable: the log, and the first time the directory holding its name',
    );
    t.same(after('begun again'), [], 'a second begin: no wait either');
    t.same(after('durable again'), [wal], 'durable again: the log alone');
    t.same(
      [...onLoop.entries()]
        .filter(([, paths]) => paths.length > 0)
        .map(([mark]) => mark),
      ['opened', 'refunded'],
      'the event loop waited for syncs at the open and the refund (synchronous = FULL), none in between',
    );
    t.same(after('completed'), [], 'a completion is not waited for');
    t.same(after('delivered'), [], 'nor the delivery mark');
    t.same(after('released'), [], 'nor a release');
    t.same(after('marked spent'), [], 'nor proofs marked spent');
    t.same(
      after('exported'),
      [wal],
      'proofs marked exported are on disk before the export is printed',
    );
    t.ok(after('refunded')?.includes(wal), 'a refund is on disk as it commits');
  },
);

t.test(
  'payments whose records were written while a sync ran share the next',
  { skip },
  async (t) => {
    const dataDir = join(work, 'together');
    const { syncs } = run(dataDir, 'together');
    const wal = join(realpathSync(dataDir), `${WALLET_FILE}-wal`);
    syncs.delete('opened');
    const logSyncs = [...syncs.values()]
      .flat()
      .filter((path) => path === wal).length;
    // The shim logs a sync as it begins: the fifth's began before the
    // three waiting for the second were told.
    t.equal(
      logSyncs,
      3,
      "the first payment's sync, one for the three after it, and one for a record written once that one had begun",
    );
  },
);

t.test(
  'a wallet file behind a symbolic link: the log SQLite writes is synced',
  { skip },
  async (t) => {
    const real = join(work, 'real');
    const dataDir = join(work, 'linked');
    mkdirSync(real);
    mkdirSync(dataDir);
    symlinkSync(join(real, WALLET_FILE), join(dataDir, WALLET_FILE));
    // A log left beside the link, which SQLite does not use.
    writeFileSync(join(dataDir, `${WALLET_FILE}-wal`), '');
    const { syncs } = run(dataDir);
    const realWal = join(realpathSync(real), `${WALLET_FILE}-wal`);
    t.ok(syncs.get('durable')?.includes(realWal), 'the log beside the file');
    t.notOk(
      syncs.get('durable')?.includes(join(dataDir, `${WALLET_FILE}-wal`)),
      'not the one beside the link',
    );
  },
);

t.test(
  'a sync that failed refuses every write after it, a sync waited for too',
  { skip },
  async (t) => {
    const { marks } = run(join(work, 'fails'), 'fails');
    const later =
      'PAYGRESS_STORE_FAILED: a sync of the wallet store failed: it takes no more writes until Paygress restarts';
    t.same(marks.slice(1), [
      'first refused: PAYGRESS_STORE_FAILED: the wallet store could not put its records on disk',
      `second refused: ${later}`,
      `third refused: ${later}`,
      'grant refused: PAYGRESS_STORE_FAILED',
      'failed true',
    ]);
  },
);

t.test(
  "a sync of SQLite's own that failed stops the store too",
  { skip },
  async (t) => {
    const { marks } = run(join(work, 'sqlite-fails'), 'sqlite fails');
    t.same(marks.slice(1), [
      'refund refused: PAYGRESS_STORE_FAILED',
      'failed true',
      'next refused: PAYGRESS_STORE_FAILED: a sync of the wallet store failed: it takes no more writes until Paygress restarts',
    ]);
  },
);

t.test(
  "a grant's own commit whose sync failed stops the store too",
  { skip },
  async (t) => {
    const { marks } = run(join(work, 'grant-fails'), 'grant fails');
    t.same(marks.slice(1), [
      'first grant refused: PAYGRESS_STORE_FAILED',
      'second grant refused: PAYGRESS_STORE_FAILED',
      'failed true',
    ]);
  },
);

t.test(
  'a store whose sync failed is not checkpointed at its close',
  { skip },
  async (t) => {
    const dataDir = join(work, 'lost-pages');
    const { marks } = run(dataDir, 'lost pages', 75);
    t.match(marks, ['opened', /^sixth refused/, 'closed']);
    // The next start: SQLite recovers the log up to the torn page.
    const db = reopened(t, dataDir);
    t.same(
      db.prepare('SELECT COUNT(*) AS n FROM redemptions').get(),
      { n: 5 },
      'with the five payments whose sync succeeded',
    );
  },
);

t.test(
  'a change whose commit failed to sync is not there at the next start',
  { skip },
  async (t) => {
    const dataDir = join(work, 'failed-commit');
    const { marks } = run(dataDir, 'failed commit', 75);
    t.match(marks, [
      'opened',
      'refund refused: PAYGRESS_STORE_FAILED',
      'grant refused: PAYGRESS_STORE_FAILED',
      'a command cannot write: database is locked',
      /^another refused: .* is in use by another Paygress process/,
    ]);
    const db = reopened(t, dataDir);
    t.same(
      db.prepare('SELECT state, delivered FROM redemptions').all(),
      [{ state: 'complete', delivered: 0 }],
      'the payment is stored, owed to its payer: the refund did not happen',
    );
    t.same(
      db.prepare('SELECT state FROM proofs').all(),
      [{ state: 'unspent' }, { state: 'unspent' }],
      "its proofs are the operator's",
    );
    t.same(
      db.prepare('SELECT COUNT(*) AS n FROM used_grants').get(),
      { n: 0 },
      'and the grant was not used',
    );
  },
);

t.test(
  'a lock another connection holds as a sync fails is taken once free, the event loop running on',
  { skip },
  async (t) => {
    const dataDir = join(work, 'lock-kept');
    const { marks } = run(dataDir, 'lock kept', 75);
    t.same(marks, [
      'opened',
      'sync failed',
      'the loop ran on',
      'the command cannot write: database is locked',
      'closed',
    ]);
  },
);

t.test(
  'a log that cannot be cut at the close is said to be',
  { skip },
  async (t) => {
    const dataDir = join(work, 'cut-refused');
    const { marks } = run(dataDir, 'cut refused', 75);
    t.same(marks, [
      'opened',
      'refund refused: PAYGRESS_STORE_FAILED',
      `not cut: its index (${join(realpathSync(dataDir), WALLET_FILE)}-shm) could not be read, or its two headers disagree`,
      'closed',
    ]);
    // What the line warns of: the next start keeps the refund its payer
    // was told had failed.
    const db = reopened(t, dataDir);
    t.same(
      db.prepare('SELECT state, delivered FROM redemptions').all(),
      [{ state: 'complete', delivered: 1 }],
      'the refund came back with the uncut log',
    );
  },
);

t.test(
  'a log moved aside while serving: the file SQLite writes is synced',
  { skip },
  async (t) => {
    const dataDir = join(work, 'renamed');
    const { syncs } = run(dataDir, 'renamed');
    const real = realpathSync(dataDir);
    t.same(
      syncs.get('durable'),
      [join(real, `${WALLET_FILE}-wal.aside`), real],
      'the log under its new name, not the empty file under the old one',
    );
  },
);
