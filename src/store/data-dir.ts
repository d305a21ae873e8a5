/**
 * Creating the data directory, with a failure an operator can act on:
 * Node's own (`EEXIST: file already exists, mkdir ...`) names neither the
 * setting nor what is wrong with the path.
 */
import { mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
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
  ENOENT: 'the file system there does not let it be created',
};

/** Creates `dir` (0700, parents too) unless it exists as a directory. */
export function makeDataDir(dir: string): void {
  try {
    makeDirs(resolve(dir));
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

/**
 * `mkdir -p`, one level at a time. Node's recursive mkdir loops for ever
 * where the parent exists but refuses the child with ENOENT (procfs:
 * `/proc/x`), creating the parent again and again.
 */
function makeDirs(dir: string): void {
  const missing: string[] = [];
  for (let at = dir; ; at = dirname(at)) {
    let isDirectory: boolean;
    try {
      isDirectory = statSync(at).isDirectory();
    } catch (err) {
      if (systemCode(err) !== 'ENOENT' || dirname(at) === at) throw err;
      missing.push(at);
      continue;
    }
    if (isDirectory) break;
    // What mkdir itself says: the directory a file, or a file on its way.
    const code = at === dir ? 'EEXIST' : 'ENOTDIR';
    throw Object.assign(new Error(`${code}: ${at} is a file`), { code });
  }
  for (const at of missing.reverse()) {
    try {
      mkdirSync(at, { mode: 0o700 });
    } catch (err) {
      // Made meanwhile by another process: as good.
      if (systemCode(err) !== 'EEXIST' || !statSync(at).isDirectory()) {
        throw err;
      }
    }
  }
}
