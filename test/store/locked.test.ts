/**
 * A write the store cannot make because another connection (a
 * `paygress wallet` command, an operator's `sqlite3`) keeps SQLite's
 * write lock past the busy timeout: a store failure, refused as Paygress's
 * fault (503 `PAYGRESS_STORE_FAILED`), not an error no one expected
 * (`PAYGRESS_INTERNAL`), whether the write is a transaction or a single
 * statement (a single-use grant's use). Nothing is written, and the
 * store writes again once the lock is free.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import t from 'tap';
import { StoreFailedError } from '../../src/core/errors.ts';
import { computeY } from '../../src/core/token.ts';
import {
  SqliteWalletStore,
  WALLET_FILE,
} from '../../src/store/sqlite-wallet-store.ts';
import { tempDir } from '../support/temp-dir.ts';

const work = tempDir('paygress-store-locked-');

t.test(
  "another connection's lock past the busy timeout is a store failure",
  async (t) => {
    const dataDir = join(work, 'data');
    const store = new SqliteWalletStore({ dataDir, serving: true });
    t.teardown(() => store.close());
    const other = new DatabaseSync(join(dataDir, WALLET_FILE));
    t.teardown(() => other.close());
    other.exec('BEGIN IMMEDIATE');

    const record = {
      id: randomUUID(),
      mint: 'http://127.0.0.1:1',
      unit: 'sat',
      amount: 1,
      ys: [computeY(randomBytes(32).toString('hex'))],
      swap: { serialized: '{}', outputAmount: 1 },
      createdAt: Date.now(),
    };
    for (const [name, write] of [
      ['a transaction (a swap recorded)', () => store.begin(record)],
      ['a single statement (a grant used)', () => store.useGrant('g1')],
    ] as const) {
      let thrown: unknown;
      try {
        write();
      } catch (err) {
        thrown = err;
      }
      t.ok(
        thrown instanceof StoreFailedError &&
          thrown.code === 'PAYGRESS_STORE_FAILED',
        `${name}: ${String(thrown)}`,
      );
    }
    t.notOk(store.failed, 'the store is not latched: the disk is sound');

    other.exec('ROLLBACK');
    store.begin(record);
    t.ok(store.useGrant('g1'), 'both made once the lock is free');
  },
);
