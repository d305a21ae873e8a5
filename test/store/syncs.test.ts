/**
 * Which of the store's writes wait for the disk, seen in the system calls:
 * the store runs in a child process with test/support/sync-shim.c
 * preloaded, which logs every fsync with the path synced, between marks
 * the child writes to the same log. A swap's record is on disk once
 * `durable()` resolves, and its commit did not stop the process for the
 * disk; what a power cut may lose without losing money (a completion, the
 * delivery mark, a release) is not synced; marking proofs exported still
 * is. Skipped where there is no C compiler to build the shim.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WALLET_FILE } from '../../src/store/sqlite-wallet-store.ts';
import { buildSyncShim } from '../support/sync-shim.ts';

const STORE = new URL('../../src/store/sqlite-wallet-store.ts', import.meta.url)
  .pathname;

const CHILD = `
import { appendFileSync } from 'node:fs';
import { randomBytes, randomUUID } from 'node:crypto';
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

const store = new SqliteWalletStore({ dataDir: process.argv[2] });
mark('opened');
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
store.markProofs(ys, 'exported', () => undefined);
mark('exported');
store.close();
`;

const work = mkdtempSync(join(tmpdir(), 'paygress-syncs-'));
t.teardown(() => rmSync(work, { recursive: true, force: true }));
const shim = buildSyncShim(work);

t.test(
  'the store syncs what money depends on, off the event loop',
  { skip: shim ? false : 'no C compiler (cc) to build the sync shim' },
  async (t) => {
    const dataDir = join(work, 'data');
    const log = join(work, 'syncs.log');
    const child = join(work, 'child.ts');
    writeFileSync(child, CHILD);
    execFileSync(process.execPath, [child, dataDir], {
      env: { ...process.env, LD_PRELOAD: shim!, SYNC_LOG: log },
      stdio: ['ignore', 'ignore', 'inherit'],
    });

    // The syncs between each mark and the one before it.
    const after = new Map<string, string[]>();
    let synced: string[] = [];
    for (const line of readFileSync(log, 'utf8').trim().split('\n')) {
      if (line.startsWith('mark ')) {
        after.set(line.slice(5), synced);
        synced = [];
      } else {
        synced.push(line.replace(/^\w+ /, '').replace(dataDir, 'DIR'));
      }
    }
    const wal = `DIR/${WALLET_FILE}-wal`;
    t.same(after.get('begun'), [], 'begin: the commit did not wait');
    t.same(
      after.get('durable'),
      [wal, 'DIR'],
      'durable: the log, and the first time the directory holding its name',
    );
    t.same(after.get('begun again'), [], 'a second begin: no wait either');
    t.same(after.get('durable again'), [wal], 'durable again: the log alone');
    t.same(after.get('completed'), [], 'a completion is not waited for');
    t.same(after.get('delivered'), [], 'nor the delivery mark');
    t.same(after.get('released'), [], 'nor a release');
    t.ok(
      after.get('exported')?.includes(wal),
      'proofs marked exported are on disk before the export is printed',
    );
  },
);
