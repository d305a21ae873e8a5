/**
 * SQLite's result codes as `node:sqlite` reports them (`errcode`, the
 * extended code, whose low byte is the primary one), read in one place.
 */

/** The extended result code of `err`, when it is SQLite's error. */
function errcode(err: unknown): number | undefined {
  const code = (err as { errcode?: unknown } | null | undefined)?.errcode;
  return typeof code === 'number' ? code : undefined;
}

/** SQLITE_BUSY: another connection kept the lock past the busy timeout. */
export function isBusy(err: unknown): boolean {
  return ((errcode(err) ?? 0) & 0xff) === 5;
}

/** SQLITE_NOTADB: the file is not a database, or is damaged. */
export function isNotADatabase(err: unknown): boolean {
  return errcode(err) === 26;
}

/** A file SQLite cannot trust: SQLITE_NOTADB, or SQLITE_CORRUPT. */
export function isDamaged(err: unknown): boolean {
  return isNotADatabase(err) || ((errcode(err) ?? 0) & 0xff) === 11;
}

/**
 * SQLite's own fsync of a file (`SQLITE_IOERR_FSYNC`) or of a directory
 * (`SQLITE_IOERR_DIR_FSYNC`) failed. Other I/O errors (a write refused
 * over quota, shared memory that cannot grow) leave the page cache as it
 * was, and pass like a full disk.
 */
export function isFailedSync(err: unknown): boolean {
  const code = errcode(err);
  return code === 1034 || code === 1290;
}

/** What to do about a damaged store, as every message that finds one says. */
export const RESTORE_ADVICE =
  'restore it from a backup (paygress wallet restore; docs/wallet.md)';
