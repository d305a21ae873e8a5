/**
 * The store's side of an answer that never reached its payer: the
 * redemption becomes owed again, once, and a refund that went out in that
 * answer comes back into the wallet.
 */
import t from 'tap';
import type { Test } from 'tap';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { WireProof } from '../../src/core/ports.ts';
import { SqliteWalletStore } from '../../src/store/sqlite-wallet-store.ts';

const MINT = 'http://127.0.0.1:3338';
const ys = [`02${'1'.repeat(64)}`, `02${'2'.repeat(64)}`];
const proofs: WireProof[] = [
  { id: '00aa', amount: 64, secret: 'a', C: `02${'3'.repeat(64)}` },
  { id: '00aa', amount: 36, secret: 'b', C: `02${'4'.repeat(64)}` },
];

/** A store holding one redemption of `ys`, begun and not completed. */
function begunStore(t: Test): SqliteWalletStore {
  const store = new SqliteWalletStore({
    dataDir: mkdtempSync(join(tmpdir(), 'paygress-undeliver-')),
  });
  t.teardown(() => store.close());
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

/** The same, completed and delivered. */
function paidStore(t: Test): SqliteWalletStore {
  const store = begunStore(t);
  store.complete('r1', proofs, true);
  return store;
}

const available = (store: SqliteWalletStore) =>
  store.balances().reduce((sum, b) => sum + b.available, 0);

t.test('an undelivered allow is owed once', async (t) => {
  const store = paidStore(t);
  t.equal(store.deliver(ys), undefined, 'delivered: nothing owed');

  store.undeliver('r1');
  store.undeliver('r1');
  t.match(store.deliver(ys), { id: 'r1', amount: 100 }, 'owed after all');
  t.equal(store.deliver(ys), undefined, 'once');
  t.equal(store.deliver([ys[0]!]), undefined, 'only to the whole token');
  t.equal(available(store), 100);
});

t.test('an undelivered refund comes back into the wallet', async (t) => {
  const store = paidStore(t);
  t.equal(store.refund('r1').length, 2);
  t.equal(available(store), 0, 'handed back');

  store.undeliver('r1');
  t.equal(available(store), 100, 'the refund never left');
  t.match(store.deliver(ys), { id: 'r1', amount: 100 });
});

t.test('a redemption not completed is left alone', async (t) => {
  const store = begunStore(t);
  store.undeliver('r1');
  t.equal(store.deliver(ys), undefined);
  t.equal(store.unfinished().length, 1, 'still pending, to be settled');
});
