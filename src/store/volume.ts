/**
 * The space left where the wallet store lives. The store grows with every
 * payment and a full volume refuses them all (PAYGRESS_STORE_FAILED), so
 * the space is on `/metrics` and a warning is logged well before then.
 */
import { statfsSync } from 'node:fs';
import type { Logger } from 'pino';

/** Space on the file system holding a directory, in bytes. */
export interface VolumeSpace {
  /** What an unprivileged writer may still take. */
  readonly available: number;
  readonly size: number;
}

/** The space where `dir` lives; undefined when the system cannot say. */
export function volumeSpace(dir: string): VolumeSpace | undefined {
  try {
    const s = statfsSync(dir);
    return { available: s.bavail * s.bsize, size: s.blocks * s.bsize };
  } catch {
    return undefined;
  }
}

/** Below this share of the volume free, the warning is logged. */
export const LOW_SPACE_SHARE = 0.1;

/** How often the warning is repeated while the space stays low, in ms. */
export const LOW_SPACE_REPEAT_MS = 10 * 60_000;

/**
 * A check to call now and then: logs a warning when less than
 * {@link LOW_SPACE_SHARE} of the data directory's volume is free, again
 * every {@link LOW_SPACE_REPEAT_MS} while it stays so.
 */
export function lowSpaceWarning(
  dataDir: string,
  logger: Logger,
  space: (dir: string) => VolumeSpace | undefined = volumeSpace,
  now: () => number = () => performance.now(),
): () => void {
  let warnedAt = -Infinity;
  return () => {
    const s = space(dataDir);
    if (s === undefined || s.available >= s.size * LOW_SPACE_SHARE) return;
    if (now() - warnedAt < LOW_SPACE_REPEAT_MS) return;
    warnedAt = now();
    logger.warn(
      { dataDir, availableBytes: s.available, sizeBytes: s.size },
      `the data volume has ${megabytes(s.available)} of ${megabytes(s.size)} free: each payment adds to the wallet store, and once the volume is full every payment is refused (PAYGRESS_STORE_FAILED); grow the volume (docs/deploy.md, "Data volume")`,
    );
  };
}

function megabytes(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}
