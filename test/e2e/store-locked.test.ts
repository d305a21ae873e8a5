/**
 * Another process holding SQLite's write lock on the wallet store (a
 * `paygress wallet` command whose commit syncs a new log's header on a
 * failing disk, an operator's `sqlite3` left in a transaction): a serving
 * Paygress waits for it on its event loop, every request with it, so it
 * waits a quarter of a second at most and refuses the payment, 503
 * `PAYGRESS_STORE_FAILED`, its token left good. Once the lock is free
 * the same token pays.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { startDevMint } from '../../src/devmint/index.ts';
import { WALLET_FILE } from '../../src/store/sqlite-wallet-store.ts';
import { NODE, startPaygressProcess } from '../support/paygress-process.ts';
import { forwardAuth } from '../support/forward-auth.ts';
import { tempDir } from '../support/temp-dir.ts';
import { mintToken } from '../support/wallet.ts';

const work = tempDir('paygress-store-locked-');
const HOLD_MS = 3000;

t.test(
  'a write lock another process holds refuses a payment at once, and holds up nothing else',
  async (t) => {
    const mint = await startDevMint();
    t.teardown(() => mint.close());
    const dataDir = join(work, 'data');
    const paygress = await startPaygressProcess({
      mintUrl: mint.url,
      dataDir,
    });
    t.teardown(() => paygress.kill());
    t.equal(
      (await forwardAuth(paygress.base, await mintToken(mint.url, 100))).status,
      200,
      'a payment before',
    );
    const token = await mintToken(mint.url, 100);

    const holder = spawn(
      NODE,
      [
        '--input-type=module',
        '-e',
        `const { DatabaseSync } = await import('node:sqlite');
         const db = new DatabaseSync(${JSON.stringify(join(dataDir, WALLET_FILE))}, { timeout: 5000 });
         db.exec('BEGIN IMMEDIATE');
         process.stdout.write('held\\n');
         setTimeout(() => { db.exec('ROLLBACK'); db.close(); }, ${HOLD_MS});`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    t.teardown(() => holder.kill('SIGKILL'));
    const released = new Promise((resolve) => holder.once('exit', resolve));
    await new Promise((resolve) => holder.stdout.once('data', resolve));

    let probing = true;
    const probes: number[] = [];
    const probe = (async () => {
      while (probing) {
        probes.push((await forwardAuth(paygress.base)).ms);
        await sleep(20);
      }
    })();
    await sleep(200);
    const refused = await forwardAuth(paygress.base, token);
    await sleep(200);
    probing = false;
    await probe;
    t.match(
      refused,
      { status: 503, reason: 'PAYGRESS_STORE_FAILED' },
      "the payment is refused as Paygress's fault",
    );
    t.ok(
      refused.ms < HOLD_MS / 2,
      `without waiting for the lock (${refused.ms.toFixed(0)} ms)`,
    );
    const slowest = Math.max(...probes);
    t.ok(
      probes.length >= 5 && slowest < HOLD_MS / 3,
      `the other requests answered meanwhile (${probes.length}, slowest ${slowest.toFixed(0)} ms)`,
    );

    await released;
    t.equal(
      (await forwardAuth(paygress.base, token)).status,
      200,
      'the token pays once the lock is free',
    );
  },
);
