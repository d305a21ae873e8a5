/**
 * `paygress wallet export` runs beside a serving Paygress (it takes no
 * lock). When its standard output is not read (a pipe into a pager left
 * waiting, a reader that stalls), its write waits: outside any store
 * transaction, so the serving Paygress records payments meanwhile. (It
 * used to write inside the transaction that marks the proofs exported,
 * with the write lock held, and every payment was refused.)
 */
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import t from 'tap';
import type { Proof } from '@cashu/cashu-ts';
import { computeY } from '../../src/core/token.ts';
import { startDevMint } from '../../src/devmint/index.ts';
import { NODE, PAYGRESS_BIN } from '../support/paygress-process.ts';
import { send, startStack } from '../support/stack.ts';
import { mintToken, testWallet } from '../support/wallet.ts';

// Enough 1 sat proofs for more tokens of 100 than a pipe's buffer holds.
const PROOFS = 2000;

t.test(
  'a payment is recorded while an export waits on its output',
  async (t) => {
    const mint = await startDevMint({ dleq: false });
    t.teardown(() => mint.close());
    const s = await startStack({ mint });
    t.teardown(() => s.close());

    const wallet = await testWallet(mint.url);
    const proofs: Proof[] = [];
    for (let left = PROOFS; left > 0; left -= 500) {
      const n = Math.min(500, left);
      const quote = await wallet.createMintQuoteBolt11(n);
      proofs.push(
        ...(await wallet.mintProofsBolt11(n, quote, undefined, {
          type: 'random',
          denominations: Array<number>(n).fill(1),
        })),
      );
    }
    const store = s.app.store;
    for (let i = 0; i < proofs.length; i += 4) {
      const outputs = proofs.slice(i, i + 4).map((p) => ({
        id: p.id,
        amount: p.amount.toNumber(),
        secret: p.secret,
        C: p.C,
      }));
      const id = randomUUID();
      store.begin({
        id,
        mint: mint.url,
        unit: 'sat',
        amount: outputs.length,
        ys: [computeY(randomBytes(32).toString('hex'))],
        swap: { serialized: '{}', outputAmount: outputs.length },
        createdAt: Date.now(),
      });
      store.complete(id, outputs, true);
      store.delivered(id);
    }

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
