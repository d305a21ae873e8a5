/**
 * The store's side of delivering a payment: a completed redemption is
 * recorded as delivered only once its answer is ready, is owed to its
 * payer when that answer never came (a crash, a lost answer, a request
 * that failed after paying), is handed to one retry of the very token
 * that paid, judged by what was paid, and a refund that went out in an
 * answer that was lost comes back into the wallet.
 */
import t from 'tap';
import type { Test } from 'tap';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import type { OwedTerms, WireProof } from '../../src/core/ports.ts';
import { SqliteWalletStore } from '../../src/store/sqlite-wallet-store.ts';
import { tempDir } from '../support/temp-dir.ts';

const MINT = 'http://127.0.0.1:3338';
const ys = [`02${'1'.repeat(64)}`, `02${'2'.repeat(64)}`];
const proofs: WireProof[] = [
  { id: '00aa', amount: 64, secret: 'a', C: `02${'3'.repeat(64)}` },
  { id: '00aa', amount: 36, secret: 'b', C: `02${'4'.repeat(64)}` },
];
const TERMS: OwedTerms = { mint: MINT, unit: 'sat', minimum: 100 };

/** A store holding one redemption of `ys`, begun and not completed. */
function begunStore(
  t: Test,
  dataDir = tempDir('paygress-delivery-'),
): SqliteWalletStore {
  const store = open(t, dataDir);
  store.begin({
    id: 'r1',
    mint: MINT,
    unit: 'sat',
    amount: 100,
    ys,
    swap: { serialized: '{}', outputAmount: 100 },
    createdAt: 1,
  });
  return store;
}

/** The same, completed and delivered to the request that paid. */
function paidStore(t: Test): SqliteWalletStore {
  const store = begunStore(t);
  store.complete('r1', proofs, true);
  store.delivered('r1');
  return store;
}

function open(t: Test, dataDir: string): SqliteWalletStore {
  const store = new SqliteWalletStore({ dataDir });
  t.teardown(() => store.close());
  return store;
}

const available = (store: SqliteWalletStore) =>
  store.balances().reduce((sum, b) => sum + b.available, 0);

t.test('an undelivered allow is owed once', async (t) => {
  const store = paidStore(t);
  t.equal(store.deliver(ys, TERMS), undefined, 'delivered: nothing owed');

  store.undeliver('r1');
  store.undeliver('r1');
  t.match(
    store.deliver(ys, TERMS),
    { id: 'r1', amount: 100 },
    'owed after all',
  );
  t.equal(
    store.deliver(ys, TERMS),
    'delivering',
    'not to a second request meanwhile',
  );
  t.equal(store.deliver([ys[0]!], TERMS), undefined, 'only to the whole token');
  store.delivered('r1');
  t.equal(store.deliver(ys, TERMS), undefined, 'once');
  t.equal(available(store), 100);
});

t.test('the grant a lost answer gave is kept for the retry', async (t) => {
  const dataDir = tempDir('paygress-delivery-');
  const store = begunStore(t, dataDir);
  store.complete('r1', proofs, true);
  store.delivered('r1');
  store.undeliver('r1', 'grant-a');
  store.close();

  const after = open(t, dataDir);
  t.match(
    after.deliver(ys, TERMS),
    { id: 'r1', grant: 'grant-a' },
    'after a restart too',
  );
  after.delivered('r1');
  after.undeliver('r1');
  t.match(
    after.deliver(ys, TERMS),
    { id: 'r1', grant: 'grant-a' },
    'a loss that names no grant keeps the one before',
  );
  after.delivered('r1');
  const other = paidStore(t);
  other.undeliver('r1');
  t.same(
    other.deliver(ys, TERMS),
    { id: 'r1', mint: MINT, unit: 'sat', amount: 100 },
    'none when no answer named one',
  );
});

t.test(
  "a refunded grant's expiry is kept until the refund is taken back",
  async (t) => {
    const dataDir = tempDir('paygress-delivery-');
    const store = begunStore(t, dataDir);
    store.complete('r1', proofs, true);
    store.delivered('r1');
    t.equal(store.refund('r1', 5_000).length, 2);
    t.same(store.refundedGrants(4_999), [{ id: 'r1', until: 5_000 }]);
    t.same(store.refundedGrants(5_000), [], 'not past the expiry');
    store.close();

    const after = open(t, dataDir);
    t.same(
      after.refundedGrants(0),
      [{ id: 'r1', until: 5_000 }],
      'after a restart too',
    );
    after.undeliver('r1');
    t.same(after.refundedGrants(0), [], 'the refund never left: not kept');

    const plain = paidStore(t);
    plain.refund('r1');
    t.same(plain.refundedGrants(0), [], 'a refund with no grant to delete');
  },
);

t.test('an undelivered refund comes back into the wallet', async (t) => {
  const store = paidStore(t);
  t.equal(store.refund('r1').length, 2);
  t.equal(available(store), 0, 'handed back');

  store.undeliver('r1');
  t.equal(available(store), 100, 'the refund never left');
  t.match(store.deliver(ys, TERMS), { id: 'r1', amount: 100 });
});

t.test('a redemption not completed is left alone', async (t) => {
  const store = begunStore(t);
  store.undeliver('r1');
  t.equal(store.deliver(ys, TERMS), undefined);
  t.equal(store.unfinished().length, 1, 'still pending, to be settled');
});

t.test('being delivered: not handed to a second request', async (t) => {
  const store = begunStore(t);
  store.complete('r1', proofs, true);
  t.equal(
    store.deliver(ys, TERMS),
    'delivering',
    'the paying request has it, and may yet leave it owed',
  );
  store.delivered('r1');
  t.equal(store.deliver(ys, TERMS), undefined, 'and delivered it');
});

t.test('a crash before the answer was ready leaves it owed', async (t) => {
  const dataDir = tempDir('paygress-delivery-');
  const before = begunStore(t, dataDir);
  before.complete('r1', proofs, true);
  before.close();

  const after = open(t, dataDir);
  t.match(after.deliver(ys, TERMS), { id: 'r1', amount: 100 }, 'owed');
  after.delivered('r1');
  t.equal(after.deliver(ys, TERMS), undefined, 'once');
});

t.test('a request that failed after paying leaves it owed', async (t) => {
  const store = begunStore(t);
  store.complete('r1', proofs, true);
  store.abandon('r1');
  t.match(store.deliver(ys, TERMS), { id: 'r1' }, 'owed');
  store.abandon('r1');
  t.match(store.deliver(ys, TERMS), { id: 'r1' }, 'a failed retry keeps it');
  store.delivered('r1');
  t.equal(store.deliver(ys, TERMS), undefined);
});

t.test('an owed payment buys only what it paid for', async (t) => {
  const store = paidStore(t);
  store.undeliver('r1');
  const wrong: [string, OwedTerms][] = [
    ['a dearer request', { ...TERMS, minimum: 101 }],
    ['another mint', { ...TERMS, mint: 'https://mint.example' }],
    ['another unit', { ...TERMS, unit: 'usd' }],
  ];
  for (const [what, terms] of wrong) {
    t.equal(store.deliver(ys, terms), undefined, `not ${what}`);
  }
  t.match(store.deliver(ys, TERMS), { id: 'r1' }, 'still owed for its own');
});

t.test(
  'a write SQLite rolled back itself (disk full) is reported as itself',
  async (t) => {
    const dataDir = tempDir('paygress-delivery-');
    const store = begunStore(t, dataDir);
    // On a full disk SQLite rolls the whole transaction back before the
    // store's own ROLLBACK, which then failed and hid why.
    const other = new DatabaseSync(join(dataDir, 'wallet.sqlite'));
    other.exec(
      `CREATE TRIGGER full BEFORE INSERT ON proofs
       BEGIN SELECT RAISE(ROLLBACK, 'database or disk is full'); END`,
    );
    other.close();

    t.throws(() => store.complete('r1', proofs, true), {
      code: 'PAYGRESS_STORE_FAILED',
      cause: { message: /database or disk is full/ },
    });
    t.equal(available(store), 0, 'nothing recorded');
    t.equal(store.findRedeemed(ys)?.pending, true, 'still pending');
  },
);
