/**
 * A disk that fails to sync: Paygress as a process, with a preloaded shim
 * (test/support/sync-shim.c) failing one sync of its write-ahead log on
 * demand. The payment being made is refused as Paygress's fault with its
 * token left good; since the writes the disk dropped cannot be known, no
 * payment is taken after it: Paygress shuts down, exit status 75, for its
 * supervisor to restart it (`/healthz` answering 503 meanwhile is
 * admin-server.test.ts's), a payment in flight answered, a signal then
 * taken as the second. After a restart both tokens pay, the one whose
 * swap went through as owed.
 * Skipped where there is no C compiler to build the shim.
 */
import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDevMint } from '../../src/devmint/index.ts';
import { STORE_FAILED_EXIT } from '../../src/main.ts';
import { startPaygressProcess } from '../support/paygress-process.ts';
import { buildSyncShim } from '../support/sync-shim.ts';
import { mintToken } from '../support/wallet.ts';

const work = mkdtempSync(join(tmpdir(), 'paygress-failed-sync-'));
t.teardown(() => rmSync(work, { recursive: true, force: true }));
const shim = buildSyncShim(work);

async function pay(base: string, token: string) {
  const res = await fetch(`${base}/auth/forward`, {
    headers: {
      'X-Cashu': token,
      'X-Forwarded-Method': 'GET',
      'X-Forwarded-Proto': 'https',
      'X-Forwarded-Host': 'app.example',
      'X-Forwarded-Uri': '/premium',
    },
  });
  await res.text();
  return { status: res.status, reason: res.headers.get('x-paygress-reason') };
}

t.test(
  'a failed sync stops Paygress for a restart, and loses no payment',
  { skip: shim ? false : 'no C compiler (cc) to build the sync shim' },
  async (t) => {
    const mint = await startDevMint();
    t.teardown(() => mint.close());
    const failNow = join(work, 'fail-now');
    const env: Record<string, string> = {
      LD_PRELOAD: shim!,
      FAIL_SYNC: '-wal',
      FAIL_SYNC_WHEN: failNow,
      PAYGRESS_LOG_LEVEL: 'info',
    };
    const paygress = await startPaygressProcess({
      mintUrl: mint.url,
      dataDir: join(work, 'data'),
      env,
    });
    t.teardown(() => paygress.kill());
    const first = await mintToken(mint.url, 100);
    const second = await mintToken(mint.url, 100);
    const health = async () => (await fetch(`${paygress.base}/healthz`)).status;
    t.equal(await health(), 200, 'alive before');

    // The first payment's record is on disk and its swap at the mint,
    // slowly, when the second one's sync fails.
    mint.setFault('swap', { kind: 'delay', ms: 1500 });
    const inFlight = pay(paygress.base, first);
    await sleep(300);
    writeFileSync(failNow, '');
    t.same(
      await pay(paygress.base, second),
      { status: 503, reason: 'PAYGRESS_STORE_FAILED' },
      'the payment whose record did not reach the disk is refused',
    );
    unlinkSync(failNow);
    // The shutdown is under way: a signal now is the second, not a start.
    await sleep(100);
    paygress.signal('SIGTERM');
    t.same(
      await inFlight,
      { status: 503, reason: 'PAYGRESS_STORE_FAILED' },
      'the payment in flight is answered within the grace period',
    );
    t.equal(
      await paygress.exited(10_000),
      STORE_FAILED_EXIT,
      'Paygress stops by itself, with exit status 75',
    );
    const log = paygress.output();
    t.match(
      log,
      /"level":50.*a sync of the wallet store failed: payments are refused until Paygress restarts/,
      'the log says why, at error',
    );
    t.match(
      log,
      /"level":50.*shutting down: the wallet store takes payments again only once Paygress restarts/,
      'and that it stops',
    );
    t.match(
      log,
      /already shutting down, signal ignored/,
      'a signal during that shutdown is the second one',
    );
    t.match(log, /"msg":"stopped"/, 'the last line, written before the exit');
    mint.setFault('swap', undefined);

    delete env.LD_PRELOAD;
    await paygress.start();
    t.equal(await health(), 200, 'alive after the restart');
    // The first swap went through, and settling at start stored it: the
    // refused payer's token buys its request once. The second never left.
    t.equal((await pay(paygress.base, first)).status, 200, 'the first, owed');
    t.equal((await pay(paygress.base, second)).status, 200, 'the second paid');
  },
);

t.test(
  'a sync that fails while a signal shuts Paygress down: exit status 75 all the same',
  { skip: shim ? false : 'no C compiler (cc) to build the sync shim' },
  async (t) => {
    const mint = await startDevMint();
    t.teardown(() => mint.close());
    const failNow = join(work, 'fail-during-shutdown');
    const syncLog = join(work, 'syncs-during-shutdown.log');
    const env: Record<string, string> = {
      LD_PRELOAD: shim!,
      FAIL_SYNC: '-wal',
      FAIL_SYNC_WHEN: failNow,
      // Long enough a sync for the signal to arrive while it runs.
      SLOW_SYNC_US: '400000',
      SYNC_LOG: syncLog,
      PAYGRESS_SHUTDOWN_GRACE_MS: '50',
    };
    const paygress = await startPaygressProcess({
      mintUrl: mint.url,
      dataDir: join(work, 'data-during-shutdown'),
      env,
    });
    t.teardown(() => paygress.kill());
    const token = await mintToken(mint.url, 100);
    // The shim writes the log at the first sync: none may have run yet.
    const syncs = () =>
      existsSync(syncLog) ? readFileSync(syncLog, 'utf8') : '';
    const before = syncs().length;
    writeFileSync(failNow, '');
    const payment = pay(paygress.base, token).catch(() => 'cut');
    // The payment's record is being synced, off the event loop.
    const deadline = Date.now() + 10_000;
    while (!/thread .*-wal/.test(syncs().slice(before))) {
      if (Date.now() > deadline) throw new Error('no sync of the log seen');
      await sleep(10);
    }
    paygress.signal('SIGTERM');
    t.equal(
      await paygress.exited(15_000),
      STORE_FAILED_EXIT,
      'the failure is known before the store closes: exit status 75',
    );
    await payment;
    unlinkSync(failNow);
    delete env.LD_PRELOAD;
    await paygress.start();
    t.equal(
      (await pay(paygress.base, token)).status,
      200,
      'the swap never left: the token pays after the restart',
    );
  },
);
