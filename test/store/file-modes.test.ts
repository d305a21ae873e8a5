/**
 * The wallet store's files hold bearer money: they are 0600 whatever the
 * mode of the data directory they are in and whatever the umask, and ones
 * found wider (left by an older Paygress, a restore) are narrowed at the
 * next open. The directory's own mode is left as it is.
 */
import t from 'tap';
import { chmodSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { SqliteWalletStore } from '../../src/store/sqlite-wallet-store.ts';
import { tempDir } from '../support/temp-dir.ts';

const FILES = [
  'paygress.lock',
  'wallet.sqlite',
  'wallet.sqlite-shm',
  'wallet.sqlite-wal',
];

const modeOf = (path: string) => (statSync(path).mode & 0o777).toString(8);

/** Each file in `dir` with its mode, as `644 wallet.sqlite`. */
const modes = (dir: string) =>
  readdirSync(dir)
    .sort()
    .map((name) => `${modeOf(join(dir, name))} ${name}`);

/** An existing data directory anyone may read, as `mkdir -m 755` makes. */
function openDir(): string {
  const dir = tempDir('paygress-modes-');
  chmodSync(dir, 0o755);
  return dir;
}

for (const umask of [0o022, 0o000]) {
  t.test(
    `files are 0600 in an existing 0755 directory, umask ${umask.toString(8).padStart(3, '0')}`,
    async (t) => {
      const previous = process.umask(umask);
      t.teardown(() => void process.umask(previous));
      const dir = openDir();
      const store = new SqliteWalletStore({ dataDir: dir, serving: true });
      t.teardown(() => store.close());
      store.balances();

      t.same(
        modes(dir),
        FILES.map((name) => `600 ${name}`),
        'the lock, the database and its write-ahead files',
      );
      t.equal(modeOf(dir), '755', 'the directory is left as it is');
    },
  );
}

t.test(
  'files found open to others are narrowed at the next open',
  async (t) => {
    const dir = openDir();
    const serving = new SqliteWalletStore({ dataDir: dir, serving: true });
    t.teardown(() => serving.close());
    for (const name of FILES) chmodSync(join(dir, name), 0o644);

    // A reading command beside the serving process narrows the store's
    // files, and leaves the serving store's locks in place.
    const reading = new SqliteWalletStore({ dataDir: dir });
    t.same(reading.balances(), []);
    reading.close();
    t.same(modes(dir), [
      '644 paygress.lock',
      '600 wallet.sqlite',
      '600 wallet.sqlite-shm',
      '600 wallet.sqlite-wal',
    ]);
    t.throws(
      () => new SqliteWalletStore({ dataDir: dir, serving: true }),
      /is in use by another Paygress process/,
      'the serving store still holds its lock',
    );

    serving.close();
    chmodSync(join(dir, 'wallet.sqlite'), 0o666);
    const next = new SqliteWalletStore({ dataDir: dir, serving: true });
    t.teardown(() => next.close());
    t.equal(modeOf(join(dir, 'paygress.lock')), '600', 'the lock, once taken');
    t.equal(modeOf(join(dir, 'wallet.sqlite')), '600');
  },
);
