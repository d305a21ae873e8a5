/**
 * What a `paygress wallet restore` under way or cut short leaves, and the
 * refusal to open a store beside it. A restore moves the store it
 * replaces (the database, its log, the log's index) into a directory of
 * its own, one file at a time, then puts the backup in place: cut short
 * in between, the data directory may hold a log without its database, or
 * nothing. Opened then, SQLite would make an empty store and delete the
 * log beside it, the payments in it with it, and Paygress would serve
 * from an empty wallet. So the restore writes a marker first, naming
 * where the store goes, and removes it last; while it is there, no store
 * opens, in the data directory or in the directory the store is moving
 * into (which holds a marker of its own meanwhile).
 */
import { existsSync, lstatSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** The marker in the data directory, while a restore replaces the store. */
export const RESTORE_MARKER = 'restore.json';

/** What the marker records. */
export interface RestoreMarker {
  /**
   * Where the store being replaced goes: a `replaced-*` directory in the
   * data directory, by its name (the directory may be mounted elsewhere
   * by the time it is read), as a path once read. Absent when there was
   * nothing to set aside, or when the marker was cut short as it was
   * written (nothing moved yet).
   */
  readonly aside?: string;
  /** In the directory a store is moving into: the move is under way. */
  readonly moving?: true;
}

/**
 * The marker of a restore under way or cut short in `dir`, if any.
 * Throws for one naming a directory no restore makes (planted, or
 * edited): following it could move the store anywhere.
 */
export function readRestoreMarker(dir: string): RestoreMarker | undefined {
  const file = join(dir, RESTORE_MARKER);
  if (!existsSync(file)) return undefined;
  let parsed: { aside?: unknown; moving?: unknown };
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8')) as typeof parsed;
  } catch {
    // Cut short as it was written: nothing was moved yet.
    return {};
  }
  if (parsed.moving === true) return { moving: true };
  const { aside } = parsed;
  if (aside === undefined) return {};
  const path =
    typeof aside === 'string' && /^replaced-[^/\\]+$/.test(aside)
      ? join(dir, aside)
      : undefined;
  // A directory of its own, or none yet: never a link leading elsewhere.
  if (path === undefined || !isDirectoryOrNothing(path)) {
    throw new Error(
      `${file} names ${String(aside)}, which is not a directory a restore makes: the store may be partly in ${dir} and partly in a replaced-* directory there; start nothing on ${dir}, put the store's files back together, then move ${RESTORE_MARKER} away`,
    );
  }
  return { aside: path };
}

function isDirectoryOrNothing(path: string): boolean {
  try {
    return lstatSync(path).isDirectory();
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT';
  }
}

/**
 * Why the store in `dataDir` must not be opened, or undefined: a restore
 * under way or cut short, or a log without its database.
 */
export function unsafeToOpen(
  dataDir: string,
  file: string,
): string | undefined {
  let marker: RestoreMarker | undefined;
  try {
    marker = readRestoreMarker(dataDir);
  } catch (err) {
    return (err as Error).message;
  }
  if (marker?.moving) {
    return `a restore is moving a store into ${dataDir}, or was cut short doing so: open it once paygress wallet restore, run again on ${dirname(dataDir)}, has finished`;
  }
  if (marker !== undefined) {
    const where =
      marker.aside === undefined
        ? 'it moved nothing yet'
        : `the store it was replacing is moving into ${marker.aside}, part of it may still be here`;
    return `a restore of the wallet store is under way or was cut short (${join(dataDir, RESTORE_MARKER)} is there; ${where}): run paygress wallet restore again, which finishes it first`;
  }
  if (!existsSync(file) && nonEmpty(`${file}-wal`)) {
    return `${file}-wal is there without ${file}: a log without its database, which SQLite would delete with the payments in it; put the database back beside it, or restore a backup (paygress wallet restore)`;
  }
  return undefined;
}

function nonEmpty(path: string): boolean {
  try {
    return statSync(path).size > 0;
  } catch {
    return false;
  }
}
