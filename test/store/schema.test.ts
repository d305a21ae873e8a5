/**
 * The wallet store opens every earlier layout it may find on disk and
 * upgrades it in place, keeping every proof and record, and refuses a
 * layout newer than it knows.
 */
import t from 'tap';
import { chmodSync, chownSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { DatabaseSync } from 'node:sqlite';
import { SqliteWalletStore } from '../../src/store/sqlite-wallet-store.ts';
import { NODE, PAYGRESS_BIN } from '../support/paygress-process.ts';
import { tempDir } from '../support/temp-dir.ts';

const STORE_URL = new URL(
  '../../src/store/sqlite-wallet-store.ts',
  import.meta.url,
).href;
/** The unprivileged user (and group) of Debian and most Linux systems. */
const NOBODY = 65534;

// The first layout Paygress wrote (no `delivered`, no version recorded).
const FIRST_SCHEMA = `
CREATE TABLE redemptions (
  id TEXT PRIMARY KEY,
  mint TEXT NOT NULL,
  unit TEXT NOT NULL,
  amount INTEGER NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('pending', 'complete', 'released')),
  swap TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  settled_at INTEGER
);
CREATE INDEX redemptions_pending ON redemptions (state) WHERE state = 'pending';
CREATE TABLE redeemed_ys (
  y TEXT PRIMARY KEY,
  redemption_id TEXT NOT NULL REFERENCES redemptions (id)
);
CREATE TABLE proofs (
  y TEXT PRIMARY KEY,
  redemption_id TEXT NOT NULL REFERENCES redemptions (id),
  mint TEXT NOT NULL,
  unit TEXT NOT NULL,
  keyset_id TEXT NOT NULL,
  amount INTEGER NOT NULL,
  secret TEXT NOT NULL,
  c TEXT NOT NULL,
  dleq TEXT,
  state TEXT NOT NULL CHECK (state IN ('unspent', 'exported', 'refunded', 'spent')),
  changed_at INTEGER NOT NULL
);
CREATE INDEX proofs_unspent ON proofs (mint, unit, state);
`;

const MINT = 'http://127.0.0.1:3338';
const PAID_Y = `02${'a'.repeat(64)}`;
const PENDING_Y = `02${'b'.repeat(64)}`;
const PROOF_Y = `02${'c'.repeat(64)}`;

function firstLayoutStore(): string {
  const dir = tempDir('paygress-schema-');
  const db = new DatabaseSync(join(dir, 'wallet.sqlite'));
  db.exec(FIRST_SCHEMA);
  db.exec(`
    INSERT INTO redemptions VALUES ('paid', '${MINT}', 'sat', 100, 'complete', '{}', 1, 2);
    INSERT INTO redeemed_ys VALUES ('${PAID_Y}', 'paid');
    INSERT INTO proofs VALUES ('${PROOF_Y}', 'paid', '${MINT}', 'sat', '00aa', 100, 's', '02${'d'.repeat(64)}', NULL, 'unspent', 2);
    INSERT INTO redemptions VALUES ('open', '${MINT}', 'sat', 50, 'pending', '{"keep":1}', 3, NULL);
    INSERT INTO redeemed_ys VALUES ('${PENDING_Y}', 'open');
    INSERT INTO redemptions VALUES ('gave-up', '${MINT}', 'sat', 20, 'released', '{"late":1}', 4, 5);
  `);
  db.close();
  return dir;
}

function versionOf(dir: string): number {
  const db = new DatabaseSync(join(dir, 'wallet.sqlite'));
  const { user_version } = db.prepare('PRAGMA user_version').get() as {
    user_version: number;
  };
  db.close();
  return user_version;
}

t.test('a store of the first layout is upgraded, nothing lost', async (t) => {
  const dir = firstLayoutStore();
  t.equal(versionOf(dir), 0);

  const store = new SqliteWalletStore({ dataDir: dir });
  t.teardown(() => store.close());
  t.same(store.balances(), [
    { mint: MINT, unit: 'sat', available: 100, pending: 50 },
  ]);
  t.same(
    store.unfinished().map((r) => [r.id, r.ys, r.swap.serialized]),
    [['open', [PENDING_Y], '{"keep":1}']],
    'the unfinished redemption is still there to settle',
  );
  t.same(
    store.released([], 0).map((r) => [r.id, r.swap.serialized]),
    [['gave-up', '{"late":1}']],
    'and the released one, for a late run',
  );
  t.same(store.findRedeemed([PAID_Y]), { y: PAID_Y, pending: false });
  t.equal(
    store.deliver([PAID_Y], { mint: MINT, unit: 'sat', minimum: 0 }),
    undefined,
    'a completed redemption of that layout counts as delivered: its token is not let through again',
  );
  t.same(
    store.unspent(MINT, 'sat').map((p) => [p.y, p.amount]),
    [[PROOF_Y, 100]],
  );
  store.close();
  t.equal(versionOf(dir), 4, 'the layout version is recorded');

  const again = new SqliteWalletStore({ dataDir: dir });
  t.same(again.balances(), [
    { mint: MINT, unit: 'sat', available: 100, pending: 50 },
  ]);
  again.close();
});

t.test(
  "a store of layout 3 gains the lost answers' grants, an owed payment kept owed",
  async (t) => {
    const dir = tempDir('paygress-schema-');
    const ys = [PAID_Y];
    const before = new SqliteWalletStore({ dataDir: dir });
    before.begin({
      id: 'paid',
      mint: MINT,
      unit: 'sat',
      amount: 100,
      ys,
      swap: { serialized: '{}', outputAmount: 100 },
      createdAt: 1,
    });
    before.complete(
      'paid',
      [{ id: '00aa', amount: 100, secret: 's', C: `02${'d'.repeat(64)}` }],
      false,
    );
    before.close();
    // Layout 3 is layout 4 without the column.
    const db = new DatabaseSync(join(dir, 'wallet.sqlite'));
    db.exec(`DROP INDEX redemptions_refunded;
             ALTER TABLE redemptions DROP COLUMN refunded_until;
             ALTER TABLE redemptions DROP COLUMN grant_id;
             PRAGMA user_version = 3`);
    db.close();

    const after = new SqliteWalletStore({ dataDir: dir });
    t.teardown(() => after.close());
    const terms = { mint: MINT, unit: 'sat', minimum: 100 };
    t.same(
      after.deliver(ys, terms),
      { id: 'paid', mint: MINT, unit: 'sat', amount: 100 },
      'still owed, with no grant of a lost answer',
    );
    after.delivered('paid');
    after.undeliver('paid', 'a-grant');
    t.match(after.deliver(ys, terms), { id: 'paid', grant: 'a-grant' });
    t.equal(versionOf(dir), 4);
  },
);

t.test('a new store starts at the current layout', async (t) => {
  const dir = tempDir('paygress-schema-');
  new SqliteWalletStore({ dataDir: dir }).close();
  t.equal(versionOf(dir), 4);
});

t.test(
  'an index added within the layout is made when a store lacking it opens',
  async (t) => {
    const dataDir = tempDir('paygress-schema-', t);
    new SqliteWalletStore({ dataDir }).close();
    const file = join(dataDir, 'wallet.sqlite');
    const indexes = () => {
      const db = new DatabaseSync(file);
      try {
        return (
          db
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index'")
            .all() as { name: string }[]
        ).map((r) => r.name);
      } finally {
        db.close();
      }
    };
    t.ok(indexes().includes('proofs_unspent_amounts'), 'a new store has it');
    // As a store of this layout written before the index was added.
    const db = new DatabaseSync(file);
    db.exec('DROP INDEX proofs_unspent_amounts');
    db.close();
    new SqliteWalletStore({ dataDir }).close();
    t.ok(indexes().includes('proofs_unspent_amounts'), 'made at the open');

    // The metrics' balance reads it, not every proof ever stored.
    const plan = new DatabaseSync(file);
    t.teardown(() => plan.close());
    const steps = plan
      .prepare(
        "EXPLAIN QUERY PLAN SELECT mint, unit, amount FROM proofs WHERE state = 'unspent'",
      )
      .all() as { detail: string }[];
    t.match(steps.map((s) => s.detail).join('\n'), /proofs_unspent_amounts/);
  },
);

t.test('a store from a newer Paygress is refused, untouched', async (t) => {
  const dir = tempDir('paygress-schema-');
  new SqliteWalletStore({ dataDir: dir }).close();
  const db = new DatabaseSync(join(dir, 'wallet.sqlite'));
  db.exec('PRAGMA journal_mode = DELETE; PRAGMA user_version = 7');
  db.close();

  t.throws(() => new SqliteWalletStore({ dataDir: dir }), {
    message:
      /wallet\.sqlite was written by a newer Paygress \(store schema 7; this one knows 4\)/,
  });
  t.equal(versionOf(dir), 7);
  const check = new DatabaseSync(join(dir, 'wallet.sqlite'));
  t.same(
    check.prepare('PRAGMA journal_mode').get(),
    { journal_mode: 'delete' },
    'not even its journal mode changed',
  );
  check.close();

  const cli = spawnSync(NODE, [PAYGRESS_BIN, 'wallet', 'balance'], {
    env: {
      PATH: process.env.PATH ?? '',
      PAYGRESS_MINTS: 'http://127.0.0.1:3338',
      PAYGRESS_DATA_DIR: dir,
    },
    encoding: 'utf8',
    timeout: 30_000,
  });
  t.equal(cli.status, 1, 'paygress wallet refuses it too');
  t.match(
    cli.stderr,
    /^paygress wallet: .*wallet\.sqlite was written by a newer Paygress/,
  );
  t.notMatch(cli.stderr, /\n\s+at /, 'a message, not a stack trace');
});

t.test('a store whose version no Paygress writes is refused', async (t) => {
  const dir = tempDir('paygress-schema-');
  const db = new DatabaseSync(join(dir, 'wallet.sqlite'));
  db.exec('PRAGMA user_version = -1');
  db.close();
  t.throws(() => new SqliteWalletStore({ dataDir: dir }), {
    message: /has store schema -1, which no Paygress writes/,
  });
  t.equal(versionOf(dir), -1);
});

t.test('a file that is not a Paygress wallet store is refused', async (t) => {
  const cases: [string, (db: DatabaseSync) => void][] = [
    ['another SQLite database', (db) => db.exec('CREATE TABLE notes (x)')],
    ['an empty one at schema 1', (db) => db.exec('PRAGMA user_version = 1')],
  ];
  for (const [what, make] of cases) {
    const dir = tempDir('paygress-schema-');
    const db = new DatabaseSync(join(dir, 'wallet.sqlite'));
    make(db);
    db.close();
    t.throws(
      () => new SqliteWalletStore({ dataDir: dir }),
      { message: /wallet\.sqlite is an SQLite database but not a Paygress/ },
      what,
    );
  }

  const dir = tempDir('paygress-schema-');
  writeFileSync(
    join(dir, 'wallet.sqlite'),
    'not a database at all, '.repeat(50),
  );
  t.throws(() => new SqliteWalletStore({ dataDir: dir }), {
    message: new RegExp(
      `^${join(dir, 'wallet.sqlite')}: is not a Paygress wallet store, or is damaged \\(file is not a database\\)`,
    ),
  });
});

t.test('one serving process per data directory', async (t) => {
  const dir = tempDir('paygress-schema-');
  const serving = new SqliteWalletStore({ dataDir: dir, serving: true });
  t.throws(() => new SqliteWalletStore({ dataDir: dir, serving: true }), {
    message: `${dir} is in use by another Paygress process (it holds ${join(dir, 'paygress.lock')}): run one Paygress per data directory`,
  });
  const reading = new SqliteWalletStore({ dataDir: dir });
  t.same(reading.balances(), [], 'reading commands still open it');
  reading.close();

  // Another process: the lock is the operating system's, not this one's.
  const other = () =>
    spawnSync(
      NODE,
      [
        '--input-type=module',
        '-e',
        `import { SqliteWalletStore } from ${JSON.stringify(STORE_URL)};
        new SqliteWalletStore({ dataDir: ${JSON.stringify(dir)}, serving: true }).close();`,
      ],
      { encoding: 'utf8', timeout: 30_000 },
    );
  const refused = other();
  t.equal(refused.status, 1, 'refused in another process');
  t.match(refused.stderr, /is in use by another Paygress process/);

  serving.close();
  t.equal(other().status, 0, 'free once the store is closed');
});

t.test('a lock file it cannot write is refused, not ignored', async (t) => {
  // SQLite opens a file it may not write read-only, where no lock would be
  // taken: as root the store is opened by another user, who may read the
  // lock file (made readable to others, as Paygress no longer makes it),
  // else the file is made read-only.
  const dir = tempDir('paygress-schema-');
  new SqliteWalletStore({ dataDir: dir, serving: true }).close();
  const lockFile = join(dir, 'paygress.lock');
  const root = process.getuid?.() === 0;
  if (root) {
    chmodSync(dir, 0o777);
    chmodSync(lockFile, 0o644);
    chownSync(join(dir, 'wallet.sqlite'), NOBODY, NOBODY);
  } else {
    chmodSync(lockFile, 0o444);
  }

  const opened = spawnSync(
    NODE,
    [
      '--input-type=module',
      '-e',
      `import { SqliteWalletStore } from ${JSON.stringify(STORE_URL)};
      new SqliteWalletStore({ dataDir: ${JSON.stringify(dir)}, serving: true }).close();`,
    ],
    {
      encoding: 'utf8',
      timeout: 30_000,
      ...(root ? { uid: NOBODY, gid: NOBODY } : {}),
    },
  );
  t.equal(opened.status, 1, 'the store does not open');
  t.match(
    opened.stderr,
    root
      ? // Another user's file is refused before SQLite opens it.
        `${lockFile} cannot be locked (${lockFile} belongs to uid 0, not to Paygress's uid ${NOBODY}`
      : `${lockFile} cannot be locked (attempt to write a readonly database): Paygress must be able to write it`,
  );
});
