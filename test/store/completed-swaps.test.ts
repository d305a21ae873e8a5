/**
 * A completed redemption keeps no record of its swap: its proofs are
 * stored, and the record (the payer's spent inputs, the outputs' secrets
 * and blinding factors) would only take disk. Pending and released swaps
 * keep theirs, which settling restores from. Records an earlier Paygress
 * kept are dropped after start, a batch at a time.
 */
import t, { type Test } from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { startDevMint } from '../../src/devmint/index.ts';
import { SqliteWalletStore } from '../../src/store/sqlite-wallet-store.ts';
import { mintToken } from '../support/wallet.ts';
import { keptLog, send, startStack } from '../support/stack.ts';

const MINT = 'http://127.0.0.1:3338';
const y = (n: number) => `02${n.toString(16).padStart(64, '0')}`;

function tempDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'paygress-swaps-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Each redemption's swap record, by id, as another reader sees it. */
function swapRecords(dataDir: string): Record<string, string> {
  const db = new DatabaseSync(join(dataDir, 'wallet.sqlite'), {
    readOnly: true,
  });
  try {
    const rows = db
      .prepare('SELECT id, swap FROM redemptions ORDER BY id')
      .all() as Array<{ id: string; swap: string }>;
    return Object.fromEntries(rows.map((r) => [r.id, r.swap]));
  } finally {
    db.close();
  }
}

function begin(store: SqliteWalletStore, id: string, ys: string[]): void {
  store.begin({
    id,
    mint: MINT,
    unit: 'sat',
    amount: 8,
    ys,
    swap: { serialized: `{"swap":"${id}"}`, outputAmount: 8 },
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
    paid: '',
    'ran-late': '',
  });
  t.same(
    store.unfinished().map((r) => r.swap.serialized),
    ['{"swap":"open"}'],
    'settling still reads what it restores from',
  );
  t.same(
    store.released([y(3)]).map((r) => r.swap.serialized),
    ['{"swap":"gave-up"}'],
  );
  t.same(store.balances(), [
    { mint: MINT, unit: 'sat', available: 16, pending: 8 },
  ]);
  t.same(store.findRedeemed([y(1)]), { y: y(1), pending: false });
});

t.test('records an earlier Paygress kept are dropped in batches', async (t) => {
  const dataDir = tempDir(t);
  const store = new SqliteWalletStore({ dataDir, serving: true });
  t.teardown(() => store.close());
  for (let i = 1; i <= 5; i++) {
    begin(store, `paid-${i}`, [y(i)]);
    store.complete(`paid-${i}`, [proof(100 + i)], false);
  }
  begin(store, 'open', [y(9)]);
  // As an earlier Paygress left them, written by a writer that knows
  // nothing of the index (SQLite keeps it all the same).
  const earlier = new DatabaseSync(join(dataDir, 'wallet.sqlite'));
  t.teardown(() => earlier.close());
  const keep = (id: string) =>
    earlier
      .prepare(`UPDATE redemptions SET swap = ? WHERE id = ?`)
      .run(`{"kept":"${id}"}`, id);
  for (let i = 1; i <= 5; i++) keep(`paid-${i}`);

  t.equal(store.dropCompletedSwaps(2), 2);
  t.equal(store.dropCompletedSwaps(2), 2);
  keep('paid-1');
  t.equal(store.dropCompletedSwaps(2), 2, 'one kept after the index was made');
  t.equal(store.dropCompletedSwaps(2), 0);
  const records = swapRecords(dataDir);
  t.equal(records['open'], '{"swap":"open"}', 'a pending one keeps its own');
  for (let i = 1; i <= 5; i++) t.equal(records[`paid-${i}`], '');
  t.equal(store.balances()[0]?.available, 40, 'no proof touched');
});

t.test(
  'a real payment keeps no record; older ones go after a restart',
  async (t) => {
    const dataDir = tempDir(t);
    const mint = await startDevMint();
    t.teardown(() => mint.close());
    const first = await startStack({ dataDir, mint });
    const token = await mintToken(mint.url, 100);
    t.equal((await send(first, 'forward', { 'X-Cashu': token })).allowed, true);
    const [paid] = Object.entries(swapRecords(dataDir));
    t.equal(paid?.[1], '', 'its swap record went with its completion');

    // 250 completed redemptions as an earlier Paygress kept them: more than
    // one start-up batch, so the rest go between requests.
    const earlier = new DatabaseSync(join(dataDir, 'wallet.sqlite'));
    earlier.exec('BEGIN');
    const insert = earlier.prepare(
      `INSERT INTO redemptions (id, mint, unit, amount, state, delivered, swap, created_at, settled_at)
     VALUES (?, ?, 'sat', 8, 'complete', 1, ?, 1, 2)`,
    );
    for (let i = 0; i < 250; i++) {
      insert.run(`earlier-${i}`, mint.url, `{"kept":${i}}`);
    }
    earlier.exec('COMMIT');
    earlier.close();
    await first.close();

    const { logger, lines } = keptLog();
    const second = await startStack({ dataDir, mint, logger });
    const dropped = async () => {
      for (let i = 0; i < 100; i++) {
        const line = lines.find((l) => typeof l['dropped'] === 'number');
        if (line !== undefined) return line;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      return undefined;
    };
    t.match(await dropped(), {
      level: 30,
      dropped: 250,
      msg: 'dropped the swap records an earlier Paygress kept for completed redemptions',
    });
    t.same(
      Object.values(swapRecords(dataDir)).filter((s) => s !== ''),
      [],
      'none left',
    );
    const replay = await send(second, 'forward', { 'X-Cashu': token });
    t.equal(
      replay.reason,
      'PAYGRESS_TOKEN_REPLAYED',
      'the payment is still known',
    );

    // Nothing to drop at the next start: no line.
    await second.close();
    const { logger: quiet, lines: after } = keptLog();
    const third = await startStack({ dataDir, mint, logger: quiet });
    await third.close();
    t.equal(after.filter((l) => 'dropped' in l).length, 0);

    // A disk too full to take the change: a warning, and Paygress serves.
    const full = new DatabaseSync(join(dataDir, 'wallet.sqlite'));
    full.exec(
      `UPDATE redemptions SET swap = '{"kept":1}' WHERE id = 'earlier-0';
       CREATE TRIGGER full BEFORE UPDATE OF swap ON redemptions
         WHEN OLD.state = 'complete'
         BEGIN SELECT RAISE(ROLLBACK, 'database or disk is full'); END`,
    );
    full.close();
    const { logger: warned, lines: warnings } = keptLog('warn');
    const fourth = await startStack({ dataDir, mint, logger: warned });
    t.teardown(() => fourth.close());
    t.match(
      warnings.find((l) => 'dropped' in l),
      {
        level: 40,
        dropped: 0,
        err: {
          message: /could not record the change: database or disk is full/,
        },
        msg: 'dropping the swap records of completed redemptions failed; the next start tries again',
      },
    );
    const another = await mintToken(mint.url, 100);
    t.equal(
      (await send(fourth, 'forward', { 'X-Cashu': another })).allowed,
      true,
      'payments go on',
    );
  },
);
