/**
 * A data directory other users may write (a volume's root, group-writable
 * through the pod's fsGroup, which Paygress accepts) lets one of them
 * leave a file of their own where SQLite keeps the write-ahead log,
 * wallet.sqlite-wal, between two runs of Paygress (a clean stop deletes
 * it). SQLite would write every new proof, bearer money, into it, where
 * its owner reads them: Paygress refuses to open the store instead.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NODE } from '../support/paygress-process.ts';

const PAYGRESS_UID = 1000;
const OTHER_UID = 65534;
const FS_GROUP = 2000;
const STORE = fileURLToPath(
  new URL('../../src/store/sqlite-wallet-store.ts', import.meta.url),
);
const TOKEN = fileURLToPath(
  new URL('../../src/core/token.ts', import.meta.url),
);

// Run as Paygress's user: opens the store, records a redemption whose
// proof's secret is argv[2], and exits without closing (as a crash, or a
// store still open, leaves the log).
const WRITER = `
import { randomBytes, randomUUID } from 'node:crypto';
const { SqliteWalletStore } = await import(${JSON.stringify(STORE)});
const { computeY } = await import(${JSON.stringify(TOKEN)});
const store = new SqliteWalletStore({ dataDir: process.argv[1], serving: true });
const id = randomUUID();
store.begin({ id, mint: 'http://127.0.0.1:1', unit: 'sat', amount: 1,
  ys: [computeY(randomBytes(32).toString('hex'))],
  swap: { serialized: '{}', outputAmount: 1 }, createdAt: Date.now() });
store.complete(id, [{ id: '00ad268c4d1f5826', amount: 1,
  secret: process.argv[2], C: '02'.padEnd(66, '1') }], true);
process.exit(0);
`;

function asPaygress(dir: string, secret: string) {
  return spawnSync(NODE, ['--input-type=module', '-e', WRITER, dir, secret], {
    uid: PAYGRESS_UID,
    gid: PAYGRESS_UID,
    encoding: 'utf8',
    timeout: 30_000,
  });
}

t.test(
  "the store's proofs never go into a file another user owns",
  {
    skip:
      process.getuid?.() === 0
        ? false
        : 'needs root, to run as two other users',
  },
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'paygress-foreign-wal-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    // As a volume with an fsGroup: group-writable, setgid.
    chownSync(dir, PAYGRESS_UID, FS_GROUP);
    chmodSync(dir, 0o2775);

    // Another user's file where the write-ahead log goes, which
    // Paygress's user may write.
    const wal = join(dir, 'wallet.sqlite-wal');
    writeFileSync(wal, '');
    chownSync(wal, OTHER_UID, FS_GROUP);
    chmodSync(wal, 0o666);

    const secret = `secret-${Date.now()}-${process.pid}`;
    const run = asPaygress(dir, secret);
    t.not(run.status, 0, 'the store is not opened');
    t.match(
      run.stderr,
      `wallet.sqlite-wal belongs to uid ${OTHER_UID}, not to Paygress's uid ${PAYGRESS_UID}`,
    );
    t.notOk(readFileSync(wal).includes(secret), 'nothing written into it');
  },
);
