/**
 * Writing text to a file descriptor synchronously, all of it or an error.
 *
 * `fs.writeSync` may write only part of what it is given, and on a
 * non-blocking descriptor (a pipe that Node, or the process at its other
 * end, put in non-blocking mode) it throws `EAGAIN` while the reader is
 * behind. Either way a caller that ignores it loses output yet carries on
 * as if it was written: for `paygress wallet export` that is money marked
 * exported but never printed.
 */
import { writeSync } from 'node:fs';

/** How long a reader that takes nothing may hold up a write, by default. */
const STALL_MS = 60_000;
/** The pause between tries while the descriptor cannot take more. */
const RETRY_MS = 5;

const pause = new Int32Array(new SharedArrayBuffer(4));

/**
 * Writes all of `text` to `fd`, or throws. Resumes after partial writes
 * and waits out `EAGAIN`; gives up once the descriptor took nothing for
 * `stallMs` in a row.
 */
export function writeFully(fd: number, text: string, stallMs = STALL_MS): void {
  const bytes = Buffer.from(text, 'utf8');
  let offset = 0;
  let stalledSince: number | undefined;
  // Each pass writes at least one byte or waits RETRY_MS, and a wait
  // without progress is bounded by stallMs: the loop ends.
  while (offset < bytes.length) {
    let written = 0;
    try {
      written = writeSync(fd, bytes, offset, bytes.length - offset);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
    }
    if (written > 0) {
      offset += written;
      stalledSince = undefined;
      continue;
    }
    const now = Date.now();
    stalledSince ??= now;
    if (now - stalledSince >= stallMs) {
      throw new Error(
        `output not taken for ${Math.round(stallMs / 1000)} s, ${bytes.length - offset} of ${bytes.length} bytes unwritten`,
      );
    }
    Atomics.wait(pause, 0, 0, RETRY_MS);
  }
}

/**
 * A line for the operator, written before the exit: the process leaves
 * with process.exit, which would drop what a non-blocking pipe had not
 * taken yet.
 */
export function say(text: string): void {
  try {
    writeFully(2, text);
  } catch {
    // Standard error gone: nothing else to tell it with.
  }
}

/**
 * The command's output, written before the exit like {@link say}; false,
 * said on standard error, when it could not be (a full disk), not when
 * the reader went away (`balance | head -0`) wanting no more.
 */
export function show(text: string): boolean {
  try {
    writeFully(1, text);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EPIPE') return true;
    say(
      `paygress wallet: the output could not be written (${code ?? String(err)})\n`,
    );
    return false;
  }
}
