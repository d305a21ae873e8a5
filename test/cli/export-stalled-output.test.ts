/**
 * `paygress wallet export` runs beside a serving Paygress (it takes no
 * lock). When its standard output is not read (a pipe into a pager left
 * waiting, a reader that stalls), its write waits: outside any store
 * transaction, so the serving Paygress records payments meanwhile. (It
 * used to write inside the transaction that marks the proofs exported,
 * with the write lock held, and every payment was refused.)
 */
import { spawn } from 'node:child_process';
import t from 'tap';
import { startDevMint } from '../../src/devmint/index.ts';
import { oneSatProofs, recordProofs } from '../support/many-proofs.ts';
import { NODE, PAYGRESS_BIN } from '../support/paygress-process.ts';
import { send, startStack } from '../support/stack.ts';
import { mintToken } from '../support/wallet.ts';

// Enough 1 sat proofs for more tokens of 100 than a pipe's buffer holds.
const PROOFS = 2000;

t.test(
  'a payment is recorded while an export waits on its output',
  async (t) => {
    const mint = await startDevMint({ dleq: false });
    t.teardown(() => mint.close());
    const s = await startStack({ mint });
    t.teardown(() => s.close());

    recordProofs(
      s.app.store,
      mint.url,
      await oneSatProofs(mint.url, PROOFS),
      4,
    );

    // Standard output is a pipe nobody reads.
    const child = spawn(NODE, [PAYGRESS_BIN, 'wallet', 'export'], {
      env: {
        PATH: process.env.PATH ?? '',
        PAYGRESS_MINTS: mint.url,
        PAYGRESS_DATA_DIR: s.dataDir,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.pause();
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += String(chunk)));
    const exited = new Promise((resolve) => child.once('exit', resolve));
    t.teardown(async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
      }
      await exited;
    });
    // Until the pipe is full and the export waits on it.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    t.equal(child.exitCode, null, `the export is waiting: ${stderr}`);

    const started = Date.now();
    const out = await send(s, 'forward', {
      'X-Cashu': await mintToken(mint.url, 100),
    });
    t.equal(out.allowed, true, 'the payment is taken');
    t.equal(out.reason, undefined, 'not refused');
    t.ok(Date.now() - started < 2000, 'without waiting on the export');
  },
);
