/**
 * What a `paygress wallet restore` cut short leaves, and the refusal to
 * open a store beside it. A restore moves the store it replaces (the
 * database, its log, the log's index) into a directory of its own, one
 * file at a time, then puts the backup in place: cut short in between,
 * the data directory may hold a log without its database, or nothing.
 * Opened then, SQLite would make an empty store and delete the log
 * beside it, the payments in it with it, and Paygress would serve from
 * an empty wallet. So the restore writes a marker first, naming where the
 * store goes, and removes it last; while it is there, no store opens.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** The marker in the data directory, while a restore replaces the store. */
export const RESTORE_MARKER = 'restore.json';

/** What the marker records. */
export interface RestoreMarker {
  /** Where the store being replaced goes. */
  readonly aside: string;
}

/** The marker of a restore under way or cut short, if any. */
export function readRestoreMarker(dataDir: string): RestoreMarker | undefined {
  const file = join(dataDir, RESTORE_MARKER);
  if (!existsSync(file)) return undefined;
  try {
    const { aside } = JSON.parse(readFileSync(file, 'utf8')) as {
      aside?: unknown;
    };
    if (typeof aside === 'string') return { aside };
  } catch {
    // Written but not whole: the restore stopped before any file moved.
  }
  return { aside: '(not recorded: nothing was moved yet)' };
}

/**
 * Why the store in `dataDir` must not be opened, or undefined: a restore
 * cut short, or a log without its database.
 */
export function unsafeToOpen(
  dataDir: string,
  file: string,
): string | undefined {
  const marker = readRestoreMarker(dataDir);
  if (marker !== undefined) {
    return `a restore of the wallet store was cut short (${join(dataDir, RESTORE_MARKER)} is there): run paygress wallet restore again, which finishes it first; the store it was replacing is in ${marker.aside}`;
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
