/**
 * What SQLite's write-ahead log holds past its last commit, and cutting
 * it off. SQLite writes a transaction's frames into the log, then syncs
 * the log, and only once the sync succeeded adds the frames to its index
 * (the `-shm` file), with `synchronous = FULL`. A commit whose sync
 * failed leaves whole, valid frames past the index's end: the caller was
 * told the change failed, and the next start, rebuilding the index from
 * the log, would keep it. (A commit with `synchronous = NORMAL` is
 * indexed at once, its sync left to the store's `durable()`: a failure
 * there leaves it in the index, and nothing here removes it.)
 *
 * The index's header is SQLite's documented file format
 * (https://sqlite.org/walformat.html): two copies of 48 bytes in the
 * machine's byte order, the page size at offset 14, the frames committed
 * (`mxFrame`) at 16. A log is a 32-byte header and frames of a page and
 * 24 bytes each.
 */
import {
  closeSync,
  fsyncSync,
  openSync,
  readSync,
  statSync,
  truncateSync,
} from 'node:fs';
import { endianness } from 'node:os';

const HEADER = 48;
const WAL_FORMAT = 3007000;
const LOG_HEADER = 32;
const FRAME_HEADER = 24;

/**
 * The length of the log SQLite's index says is committed, or undefined
 * when the index cannot be read or its two copies disagree.
 */
function committedLogLength(shmPath: string): number | undefined {
  const header = Buffer.alloc(2 * HEADER);
  let fd: number | undefined;
  try {
    fd = openSync(shmPath, 'r');
    if (readSync(fd, header, 0, header.length, 0) !== header.length) {
      return undefined;
    }
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  // SQLite writes the second copy, then the first; equal, they are whole.
  if (!header.subarray(0, HEADER).equals(header.subarray(HEADER))) {
    return undefined;
  }
  const le = endianness() === 'LE';
  const u32 = (at: number) =>
    le ? header.readUInt32LE(at) : header.readUInt32BE(at);
  const u16 = le ? header.readUInt16LE(14) : header.readUInt16BE(14);
  if (u32(0) !== WAL_FORMAT || header[12] !== 1) return undefined;
  const pageSize = (u16 & 0xfe00) + ((u16 & 0x0001) << 16);
  const frames = u32(16);
  return frames === 0 ? 0 : LOG_HEADER + frames * (pageSize + FRAME_HEADER);
}

/**
 * Cuts the log at `walPath` back to what the index beside it says is
 * committed, for a store that takes no more writes. Undefined once the
 * log ends at its last commit; otherwise why it was left as it is.
 */
export function dropUncommitted(
  walPath: string,
  shmPath: string,
): string | undefined {
  const length = committedLogLength(shmPath);
  if (length === undefined) {
    return `its index (${shmPath}) could not be read, or its two headers disagree`;
  }
  try {
    if (statSync(walPath).size > length) truncateSync(walPath, length);
  } catch (err) {
    return `it could not be truncated (${(err as NodeJS.ErrnoException).code ?? String(err)})`;
  }
  try {
    const fd = openSync(walPath, 'r+');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // The disk failed a sync already: the cut is in the page cache, which
    // the next start reads unless the machine goes down first.
  }
  return undefined;
}
