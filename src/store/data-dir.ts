/**
 * Creating the data directory, with a failure an operator can act on:
 * Node's own (`EEXIST: file already exists, mkdir ...`) names neither the
 * setting nor what is wrong with the path.
 */
import { mkdirSync } from 'node:fs';
import { StartupError, systemCode } from '../startup-error.ts';

const WHY: Record<string, string> = {
  EEXIST: 'it is a file, not a directory',
  ENOTDIR: 'a part of its path is a file, not a directory',
  EACCES:
    'permission denied: create it for the user Paygress runs as, or choose another',
  EPERM:
    'not permitted: create it for the user Paygress runs as, or choose another',
  EROFS: 'it is on a read-only file system',
  ENOSPC: 'the disk is full',
  ENAMETOOLONG: 'its path is too long',
};

/** Creates `dir` (0700, parents too) unless it exists as a directory. */
export function makeDataDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    const code = systemCode(err);
    const why =
      code !== undefined && WHY[code] !== undefined
        ? `${WHY[code]} (${code})`
        : String((err as Error)?.message ?? err);
    throw new StartupError(
      `the data directory ${dir} cannot be used: ${why}; set dataDir (PAYGRESS_DATA_DIR) to a directory Paygress can write`,
      { cause: err },
    );
  }
}
