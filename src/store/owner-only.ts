/**
 * File modes for the data directory. The wallet store is bearer money and
 * the directory may already exist with any mode (mkdir's `mode` applies
 * only to a directory it creates), under any umask: so Paygress sets the
 * mode of each file it keeps there itself, rather than trusting either.
 */
import {
  chmodSync,
  closeSync,
  constants,
  lstatSync,
  openSync,
  statSync,
} from 'node:fs';

/** Read and write for the owner, nothing for anyone else. */
export const OWNER_ONLY = 0o600;

/**
 * Makes `file` owner-only before SQLite opens it, creating it empty (which
 * SQLite takes for a new database) when missing. Its `-wal` and `-shm`
 * files too, when present: SQLite gives the ones it creates the main
 * file's mode, but keeps the mode of ones left behind by a Paygress that
 * stopped without closing (a crash, or an older version that made them
 * 0644). Called at every open, so a mode widened in between (a restore, a
 * volume's group ownership being applied) is narrowed again.
 *
 * A file another user owns is refused (see restrict), unless Paygress
 * runs as root.
 */
export function makeOwnerOnly(file: string): void {
  create(file);
  for (const path of [file, `${file}-wal`, `${file}-shm`]) restrict(path);
}

/**
 * Creates `file` 0600 when missing. Nothing else here opens a file: SQLite
 * takes POSIX locks, which a process loses on every one of its
 * descriptors of the file as soon as it closes any one of them, so opening
 * and closing a store's file beside a connection of this process that
 * holds it (a `wallet` command's store beside the serving one, the lock
 * file) would drop that connection's locks.
 */
function create(file: string): void {
  try {
    createNew(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // There already, or not ours to create: the open that follows
    // reports what matters.
    if (code === 'EEXIST' || code === 'EACCES') return;
    throw err;
  }
}

/**
 * Creates `file` empty and 0600, or throws (`EEXIST` when it is there).
 * Exclusive: a file that exists, or a link planted in its place, is not
 * opened. A file this creates nobody else has open yet.
 */
export function createNew(file: string): void {
  closeSync(
    openSync(
      file,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL,
      OWNER_ONLY,
    ),
  );
}

/**
 * Sets an existing regular file's mode to 0600 (the umask only removes
 * bits), and refuses one another user owns: a `-wal` left in a directory
 * others may write (a volume's group-writable root) would have SQLite
 * write every new proof into a file its owner reads. Running as root,
 * SQLite gives its files the database's owner itself.
 */
function restrict(path: string): void {
  let stat;
  try {
    stat = lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  // A link is left alone, not followed to change some other file's mode.
  if (!stat.isFile()) return;
  const uid = process.geteuid?.();
  if (uid !== undefined && uid !== 0 && stat.uid !== uid) {
    throw new Error(
      `${path} belongs to uid ${stat.uid}, not to Paygress's uid ${uid}: its owner could read what Paygress writes there; remove it, or give it to uid ${uid}`,
    );
  }
  if ((stat.mode & 0o777) === OWNER_ONLY) return;
  try {
    chmodSync(path, OWNER_ONLY);
  } catch (err) {
    // Gone meanwhile.
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/**
 * Who besides its owner may use the directory: `write` when users outside
 * its group may write it (and so delete or replace the files in it),
 * `read` when others or the group may list or enter it, undefined when
 * it is owner-only; with its mode, in octal.
 */
export function openToOthers(
  dir: string,
): { access: 'read' | 'write'; mode: string } | undefined {
  const mode = statSync(dir).mode & 0o7777;
  if ((mode & 0o077) === 0) return undefined;
  return {
    access: mode & 0o002 ? 'write' : 'read',
    mode: mode.toString(8).padStart(4, '0'),
  };
}
