/**
 * A swap's record (the payer's inputs, the outputs' secrets and blinding
 * factors) lives in its own table while settling may need it: unfinished
 * or released. It goes when the swap completes, and with it the page it
 * filled, however many payments are in flight; and a swap that can never
 * run (its inputs spent elsewhere) leaves nothing behind.
 */
import t, { type Test } from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { randomBytes } from 'node:crypto';
import { getEncodedToken } from '@cashu/cashu-ts';
import { startDevMint } from '../../src/devmint/index.ts';
import { SqliteWalletStore } from '../../src/store/sqlite-wallet-store.ts';
import { mintProofs, mintToken, testWallet } from '../support/wallet.ts';
import { send, startStack } from '../support/stack.ts';

const MINT = 'http://127.0.0.1:3338';
const y = (n: number) => `02${n.toString(16).padStart(64, '0')}`;

function tempDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'paygress-swaps-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Runs `read` on a read-only connection to the store in `dataDir`. */
function reading<T>(dataDir: string, read: (db: DatabaseSync) => T): T {
  const db = new DatabaseSync(join(dataDir, 'wallet.sqlite'), {
    readOnly: true,
  });
  try {
    return read(db);
  } finally {
    db.close();
  }
}

/** The swap records kept, by redemption id. */
function swapRecords(dataDir: string): Record<string, string> {
  return reading(dataDir, (db) => {
    const rows = db
      .prepare('SELECT redemption_id AS id, swap FROM swaps ORDER BY id')
      .all() as Array<{ id: string; swap: string }>;
    return Object.fromEntries(rows.map((r) => [r.id, r.swap]));
  });
}

/** Rows of each table that holds something of a redemption. */
function rowCounts(dataDir: string): Record<string, number> {
  return reading(dataDir, (db) =>
    Object.fromEntries(
      ['redemptions', 'swaps', 'redeemed_ys', 'released_inputs'].map(
        (table) => [
          table,
          (
            db.prepare(`SELECT COUNT(*) AS n FROM ${table}`).get() as {
              n: number;
            }
          ).n,
        ],
      ),
    ),
  );
}

function begin(
  store: SqliteWalletStore,
  id: string,
  ys: string[],
  swap = `{"swap":"${id}"}`,
): void {
  store.begin({
    id,
    mint: MINT,
    unit: 'sat',
    amount: 8,
    ys,
    swap: { serialized: swap, outputAmount: 8 },
    createdAt: 1,
  });
}

const proof = (n: number) => ({
  id: '00aa',
  amount: 8,
  secret: `secret-${n}`,
  C: y(n),
});

t.test('only unfinished and released swaps keep their record', async (t) => {
  const dataDir = tempDir(t);
  const store = new SqliteWalletStore({ dataDir });
  t.teardown(() => store.close());

  begin(store, 'paid', [y(1)]);
  store.complete('paid', [proof(101)], false);
  begin(store, 'open', [y(2)]);
  begin(store, 'gave-up', [y(3)]);
  store.release('gave-up');
  begin(store, 'ran-late', [y(4)]);
  store.release('ran-late');
  store.complete('ran-late', [proof(104)], false);

  t.same(swapRecords(dataDir), {
    'gave-up': '{"swap":"gave-up"}',
    open: '{"swap":"open"}',
  });
  t.same(
    store.unfinished().map((r) => [r.id, r.swap.serialized]),
    [['open', '{"swap":"open"}']],
    'settling still reads what it restores from',
  );
  t.same(
    store.released([y(3)]).map((r) => [r.id, r.ys, r.swap.serialized]),
    [['gave-up', [y(3)], '{"swap":"gave-up"}']],
  );
  t.same(store.balances(), [
    { mint: MINT, unit: 'sat', available: 16, pending: 8 },
  ]);
  t.same(store.findRedeemed([y(1)]), { y: y(1), pending: false });

  // Final: it can never run, so nothing of it stays, released or not.
  store.release('gave-up', true);
  store.release('open', true);
  t.same(swapRecords(dataDir), {});
  t.same(rowCounts(dataDir), {
    redemptions: 2,
    swaps: 0,
    redeemed_ys: 2,
    released_inputs: 0,
  });
  t.same(store.released([y(3)]), []);
  t.doesNotThrow(
    () => store.release('gave-up', true),
    'released again once gone: nothing to do',
  );
  t.equal(store.findRedeemed([y(2)]), undefined, 'its proofs are free again');
});

t.test('payments in flight together leave no page behind', async (t) => {
  const dataDir = tempDir(t);
  const store = new SqliteWalletStore({ dataDir });
  t.teardown(() => store.close());
  // Records of a real three-proof swap's size, eight in flight at once.
  const record = () => `{"r":"${randomBytes(1050).toString('hex')}"}`;
  const count = 400;
  for (let n = 0; n < count; n += 8) {
    for (let i = n; i < n + 8; i++) begin(store, `r${i}`, [y(i)], record());
    for (let i = n; i < n + 8; i++) {
      store.complete(`r${i}`, [proof(1000 + i)], false);
    }
  }
  const bytes = reading(dataDir, (db) =>
    Object.fromEntries(
      (
        db
          .prepare(
            'SELECT name, SUM(pgsize) AS bytes FROM dbstat GROUP BY name',
          )
          .all() as Array<{ name: string; bytes: number }>
      ).map((r) => [r.name, r.bytes]),
    ),
  );
  // Emptied in place, each 2 KB record had left a 4 KiB page of its own.
  t.ok(
    bytes['redemptions']! / count < 400,
    `redemptions: ${bytes['redemptions']! / count} bytes a payment`,
  );
  t.ok(bytes['swaps']! <= 16 * 4096, `swaps: ${bytes['swaps']} bytes in all`);
});

t.test('a real payment keeps no record of its swap', async (t) => {
  const mint = await startDevMint();
  t.teardown(() => mint.close());
  const dataDir = tempDir(t);
  const stack = await startStack({ dataDir, mint });
  t.teardown(() => stack.close());

  const token = await mintToken(mint.url, 100);
  t.equal((await send(stack, 'forward', { 'X-Cashu': token })).allowed, true);
  t.same(rowCounts(dataDir), {
    redemptions: 1,
    swaps: 0,
    redeemed_ys: 3,
    released_inputs: 0,
  });

  // Spent by its owner before it reached Paygress, again and again: the
  // mint refuses each swap, and none leaves anything in the store.
  const before = rowCounts(dataDir);
  const owner = await testWallet(mint.url);
  for (let i = 0; i < 5; i++) {
    const spent = await mintToken(mint.url, 100);
    await owner.receive(spent);
    const out = await send(stack, 'forward', { 'X-Cashu': spent });
    t.equal(out.reason, 'PAYGRESS_TOKEN_REPLAYED');
  }
  t.same(rowCounts(dataDir), before, 'nothing kept of tokens spent elsewhere');

  // Half spent elsewhere: refused, and what is left is the payer's again.
  const kept = await mintProofs(mint.url, 64);
  const gone = await mintProofs(mint.url, 64);
  await owner.receive(
    getEncodedToken({ mint: mint.url, unit: 'sat', proofs: gone }),
  );
  const mixed = getEncodedToken({
    mint: mint.url,
    unit: 'sat',
    proofs: [...kept, ...gone],
  });
  t.equal(
    (await send(stack, 'forward', { 'X-Cashu': mixed })).reason,
    'PAYGRESS_TOKEN_REPLAYED',
  );
  t.same(rowCounts(dataDir), before);
  const back = await owner.receive(
    getEncodedToken({ mint: mint.url, unit: 'sat', proofs: kept }),
  );
  t.equal(
    back.reduce((n, p) => n + p.amount.toNumber(), 0),
    64,
  );
});
