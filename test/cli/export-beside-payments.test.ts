/**
 * `paygress wallet export` beside a serving Paygress, on a disk whose
 * syncs are slow (test/support/sync-shim.c, preloaded into the export
 * only, each of its syncs two seconds long, as on a sick network volume).
 * The export's commits share SQLite's write lock with the payments: one
 * that held it while its sync ran would stop Paygress's event loop for as
 * long as the sync (a payment's commit waits for the lock there), every
 * request with it. Paygress keeps answering within a fraction of that,
 * every payment taken, and the export prints every token it recorded.
 * Skipped where there is no C compiler to build the shim.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { startDevMint } from '../../src/devmint/index.ts';
import {
  NODE,
  PAYGRESS_BIN,
  startPaygressProcess,
} from '../support/paygress-process.ts';
import { buildSyncShim } from '../support/sync-shim.ts';
import { forwardAuth } from '../support/forward-auth.ts';
import { tempDir } from '../support/temp-dir.ts';
import { decodeToken, mintToken } from '../support/wallet.ts';

const work = tempDir('paygress-export-beside-payments-');
const shim = buildSyncShim(work);

/** Each of the export's syncs, in ms. */
const SLOW_SYNC_MS = 2000;
/**
 * The longest Paygress may take to answer while the export runs, in ms:
 * three quarters of a sync, room for a loaded machine (under 250 ms here
 * alone, 1.1 s once with another copy of this test beside it).
 */
const ANSWER_WITHIN_MS = (SLOW_SYNC_MS * 3) / 4;

t.test(
  'a wallet export syncing slowly does not hold up a serving Paygress',
  { skip: shim ? false : 'no C compiler (cc) to build the sync shim' },
  async (t) => {
    const mint = await startDevMint({ dleq: false });
    t.teardown(() => mint.close());
    const dataDir = join(work, 'data');
    const paygress = await startPaygressProcess({
      mintUrl: mint.url,
      dataDir,
    });
    t.teardown(() => paygress.kill());

    // Money in the store to export, and tokens to pay with meanwhile.
    for (let i = 0; i < 3; i++) {
      t.equal(
        (await forwardAuth(paygress.base, await mintToken(mint.url, 100)))
          .status,
        200,
        'paid before the export',
      );
    }
    const tokens: string[] = [];
    // Few enough that Paygress's log does not reach SQLite's checkpoint
    // (1,000 pages, about 35 payments) and start over: the export's
    // commit would then begin a new log, whose header SQLite syncs within
    // the commit, and Paygress's payments would wait for that sync.
    for (let i = 0; i < 25; i++) tokens.push(await mintToken(mint.url, 100));

    const syncLog = join(work, 'export-syncs.log');
    const exporting = spawn(NODE, [PAYGRESS_BIN, 'wallet', 'export'], {
      env: {
        PATH: process.env.PATH ?? '',
        PAYGRESS_MINTS: mint.url,
        PAYGRESS_DATA_DIR: dataDir,
        LD_PRELOAD: shim!,
        SLOW_SYNC_US: String(SLOW_SYNC_MS * 1000),
        SYNC_LOG: syncLog,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    exporting.stdout.on('data', (d) => (stdout += d));
    exporting.stderr.on('data', (d) => (stderr += d));
    let done = false;
    const status = new Promise<number | null>((resolve) =>
      exporting.once('close', (code) => {
        done = true;
        resolve(code);
      }),
    );

    // Refusals every 20 ms and payments one after another, until the
    // export is done.
    const probes: number[] = [];
    const payments: { status: number; ms: number }[] = [];
    const probing = (async () => {
      while (!done) {
        probes.push((await forwardAuth(paygress.base)).ms);
        await sleep(20);
      }
    })();
    const paying = (async () => {
      while (!done && tokens.length > 0) {
        payments.push(await forwardAuth(paygress.base, tokens.pop()));
        await sleep(250);
      }
    })();
    t.equal(await status, 0, `the export succeeded: ${stderr}`);
    await Promise.all([probing, paying]);

    const printed = stdout.trim().split('\n').filter(Boolean);
    t.ok(printed.length > 0, 'the export printed tokens');
    const sum = (
      await Promise.all(printed.map((p) => decodeToken(mint.url, p)))
    )
      .flatMap((d) => d.proofs)
      .reduce((s, p) => s + Number(p.amount), 0);
    t.ok(sum >= 300, `at least the 300 sat paid before it (${sum})`);
    // The export's syncs were slowed (the log's among them), so the
    // payments ran beside them.
    const syncs = readFileSync(syncLog, 'utf8').split('\n').filter(Boolean);
    t.ok(
      syncs.filter((line) => line.endsWith('wallet.sqlite-wal')).length >= 2,
      `the export synced its commits (${syncs.length} syncs)`,
    );

    t.ok(payments.length >= 3, `payments ran meanwhile (${payments.length})`);
    t.same(
      [...new Set(payments.map((p) => p.status))],
      [200],
      'every payment meanwhile was taken',
    );
    const slowest = Math.max(...probes, ...payments.map((p) => p.ms));
    t.ok(
      slowest < ANSWER_WITHIN_MS,
      `every answer within ${ANSWER_WITHIN_MS} ms (slowest ${slowest.toFixed(0)} ms of ${probes.length} refusals and ${payments.length} payments; each export sync takes ${SLOW_SYNC_MS} ms)`,
    );
  },
);
