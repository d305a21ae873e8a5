/**
 * Swaps released as not run are kept aside by their inputs, so that one
 * which ran late can be found from a token sharing any of its proofs;
 * one refused by the mint's own answer is not kept at all.
 */
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteWalletStore } from '../../src/store/sqlite-wallet-store.ts';

const y = (n: number) => `02${n.toString(16).padStart(64, '0')}`;

t.test('released swaps are found by any of their inputs', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'paygress-released-'));
  let now = 1000;
  const store = new SqliteWalletStore({ dataDir, now: () => now });
  t.teardown(() => {
    store.close();
    rmSync(dataDir, { recursive: true, force: true });
  });
  const begin = (id: string, ys: string[]) =>
    store.begin({
      id,
      mint: 'http://127.0.0.1:3338',
      unit: 'sat',
      amount: 8 * ys.length,
      ys,
      swap: { serialized: `{"swap":"${id}"}`, outputAmount: 8 * ys.length },
      createdAt: now,
    });

  begin('a', [y(1), y(2)]);
  store.release('a');
  now = 2000;
  // The same proof again, in a later swap: both keep it as an input.
  begin('b', [y(2), y(3)]);
  store.release('b');
  now = 3000;
  begin('c', [y(4)]);
  store.release('c');
  begin('refused', [y(5)]);
  store.release('refused', true);
  begin('pending', [y(6)]);

  const ids = (records: { id: string }[]) => records.map((r) => r.id);
  t.same(ids(store.released([y(1)])), ['a']);
  t.same(ids(store.released([y(2)])), ['a', 'b'], 'oldest first');
  t.same(ids(store.released([y(3), y(4)])), ['b', 'c']);
  t.same(ids(store.released([y(2), y(3), y(1)])), ['a', 'b'], 'each once');
  t.same(ids(store.released([y(5)])), [], 'a refused swap is not kept');
  t.same(ids(store.released([y(6)])), [], 'a pending one is not released');
  t.same(ids(store.released([y(9)])), []);
  t.same(ids(store.released([y(2)], 2000)), ['b'], 'released since');
  t.same(ids(store.released([])), ['a', 'b', 'c'], 'every one');
  t.same(ids(store.released([], 3000)), ['c']);

  const [b] = store.released([y(3)]);
  t.same(b?.ys, [y(2), y(3)], 'with all its inputs');
  t.equal(b?.swap.serialized, '{"swap":"b"}');
  t.equal(b?.mint, 'http://127.0.0.1:3338');
});
