/**
 * One serving Paygress per data directory. The wallet store's bookkeeping
 * of payments being delivered and owed lives partly in the memory of the
 * process serving from it, so a second process on the same directory (a
 * rolling update on one node, a copy started by hand) would answer owed
 * retries wrongly. The lock is an exclusive SQLite lock on `paygress.lock`
 * in the directory, held for as long as the store is open: the operating
 * system drops it when the process ends, however it ends, so a crash never
 * leaves a stale lock behind. Reading commands (`paygress wallet`) do not
 * take it.
 */
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { makeOwnerOnly } from './owner-only.ts';
import { StartupError } from '../startup-error.ts';
import { isNotADatabase } from './sqlite-errors.ts';

/** File in the data directory that the serving process holds locked. */
export const LOCK_FILE = 'paygress.lock';

/** The lock is held by another process (not: it cannot be taken). */
export class LockHeldError extends StartupError {}

/** A held lock; `release` is idempotent. */
export interface DataDirLock {
  release(): void;
}

/** File in the data directory that a running `wallet export` holds. */
export const EXPORT_LOCK_FILE = 'export.lock';

/**
 * Takes the data directory's lock, or throws at once, naming the
 * directory, when another process holds it.
 */
export function lockDataDir(dataDir: string): DataDirLock {
  const file = join(dataDir, LOCK_FILE);
  return holdLock(
    file,
    `${dataDir} is in use by another Paygress process (it holds ${file}): run one Paygress per data directory`,
  );
}

/**
 * Takes the lock of the `wallet` commands, or throws at once when another
 * of them holds it: a token one export has recorded
 * and is still printing must not look, to a second, like one left
 * unprinted by an earlier export, and a backup must not read the store's
 * files while a restore moves them.
 */
export function lockExport(dataDir: string): DataDirLock {
  const file = join(dataDir, EXPORT_LOCK_FILE);
  return holdLock(
    file,
    `another paygress wallet command (an export, a backup, a restore) is running on ${dataDir} (it holds ${file}): let it finish first`,
  );
}

function holdLock(file: string, inUse: string): DataDirLock {
  let db: DatabaseSync;
  try {
    makeOwnerOnly(file);
    db = new DatabaseSync(file);
  } catch (err) {
    throw cannotLock(file, err);
  }
  try {
    // In exclusive locking mode the lock a write takes is kept until the
    // connection closes; a second process fails at once (no timeout). The
    // write is what makes it fail on a file SQLite could open only for
    // reading (another owner's), where taking no lock would pass unseen.
    db.exec(
      `PRAGMA busy_timeout = 0; PRAGMA journal_mode = MEMORY; PRAGMA locking_mode = EXCLUSIVE;
       BEGIN EXCLUSIVE;
       CREATE TABLE IF NOT EXISTS holder (pid INTEGER NOT NULL);
       DELETE FROM holder;
       INSERT INTO holder (pid) VALUES (${process.pid});
       COMMIT;`,
    );
  } catch (err) {
    db.close();
    if (/locked|busy/i.test(String((err as Error)?.message))) {
      throw new LockHeldError(inUse, { cause: err });
    }
    throw cannotLock(file, err);
  }
  return {
    release: () => {
      if (db.isOpen) db.close();
    },
  };
}

function cannotLock(file: string, err: unknown): Error {
  const why = String((err as Error)?.message ?? err);
  // A file of the same name that is no SQLite database: not ours.
  const advice = isNotADatabase(err)
    ? 'it is not a lock file Paygress made: move it out of the data directory'
    : 'Paygress must be able to write it; check who owns the data directory and its files';
  return new StartupError(`${file} cannot be locked (${why}): ${advice}`, {
    cause: err,
  });
}
