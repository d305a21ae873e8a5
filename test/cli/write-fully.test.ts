/**
 * `writeFully` writes all its text to a pipe whose reader is slow, even
 * when the pipe is non-blocking (Node makes it so once `process.stdout` is
 * touched), where a bare `writeSync` writes part of it or throws `EAGAIN`;
 * and it gives up, with an error, on a reader that takes nothing.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { NODE } from '../support/paygress-process.ts';

const MODULE = fileURLToPath(
  new URL('../../src/cli/write-fully.ts', import.meta.url),
);
const SIZE = 1 << 20;

/** Runs a child that writes SIZE bytes to its stdout with writeFully. */
function writer(stallMs: number, readAfterMs: number | undefined) {
  const script = `
    import { writeFully } from ${JSON.stringify(MODULE)};
    process.stdout; // puts the pipe in non-blocking mode
    try {
      writeFully(1, 'x'.repeat(${SIZE}), ${stallMs});
    } catch (err) {
      process.stderr.write(err.message);
      process.exitCode = 1;
    }
  `;
  const child = spawn(NODE, ['--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let received = 0;
  let stderr = '';
  child.stdout.pause();
  if (readAfterMs !== undefined) {
    setTimeout(() => {
      child.stdout.on('data', (chunk: Buffer) => (received += chunk.length));
      child.stdout.resume();
    }, readAfterMs);
  }
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
  // A reader that never starts would hold the pipe, and 'close', open.
  if (readAfterMs === undefined) {
    child.once('exit', () => child.stdout.destroy());
  }
  return new Promise<{ code: number | null; received: number; stderr: string }>(
    (resolve, reject) => {
      child.once('error', reject);
      child.once('close', (code) => resolve({ code, received, stderr }));
    },
  );
}

t.test('a slow reader gets every byte', async (t) => {
  const out = await writer(10_000, 300);
  t.equal(out.stderr, '');
  t.equal(out.code, 0);
  t.equal(out.received, SIZE, 'all of it, none lost to a short write');
});

t.test('a reader that takes nothing makes the write fail', async (t) => {
  const out = await writer(200, undefined);
  t.equal(out.code, 1, 'the writer does not report success');
  t.match(out.stderr, /output not taken for 0 s, \d+ of 1048576 bytes/);
});
