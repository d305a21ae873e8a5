/**
 * A disk whose syncs stop answering: Paygress as a process, with a
 * preloaded shim (test/support/sync-shim.c) making each sync of it take
 * 6 s on demand. A payment waits for its record's sync, and nothing else
 * shows it: `paygress_store_sync_running_seconds` rises while the sync
 * runs, a warning names it at 5 s, another its end, and
 * `paygress_store_sync_duration_seconds` counts every sync payments
 * waited for, this one in the bucket past 5 s.
 * Skipped where there is no C compiler to build the shim.
 */
import { existsSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { startDevMint } from '../../src/devmint/index.ts';
import { startPaygressProcess } from '../support/paygress-process.ts';
import { buildSyncShim } from '../support/sync-shim.ts';
import { forwardAuth } from '../support/forward-auth.ts';
import { tempDir } from '../support/temp-dir.ts';
import { mintToken } from '../support/wallet.ts';

const work = tempDir('paygress-slow-sync-');
const shim = buildSyncShim(work);

const pay = async (base: string, token: string) =>
  (await forwardAuth(base, token)).status;

/** The value of one series in Paygress's `/metrics`. */
async function metric(base: string, series: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  if (line === undefined) throw new Error(`no ${series} in /metrics`);
  return Number(line.slice(series.length + 1));
}

t.test(
  'a sync that does not end is measured and logged, the payment waiting',
  { skip: shim ? false : 'no C compiler (cc) to build the sync shim' },
  async (t) => {
    const mint = await startDevMint();
    t.teardown(() => mint.close());
    const slowNow = join(work, 'slow-now');
    const paygress = await startPaygressProcess({
      mintUrl: mint.url,
      dataDir: join(work, 'data'),
      env: {
        LD_PRELOAD: shim!,
        SLOW_SYNC_US: '6000000',
        SLOW_SYNC_WHEN: slowNow,
        PAYGRESS_LOG_LEVEL: 'info',
      },
    });
    t.teardown(() => paygress.kill());
    const count = 'paygress_store_sync_duration_seconds_count';
    const pastFive = 'paygress_store_sync_duration_seconds_bucket{le="5"}';
    const running = 'paygress_store_sync_running_seconds';

    t.equal(await pay(paygress.base, await mintToken(mint.url, 100)), 200);
    const before = await metric(paygress.base, count);
    t.ok(before >= 1, `the payment's sync is counted (${before})`);
    t.equal(await metric(paygress.base, running), 0, 'no sync runs now');

    const token = await mintToken(mint.url, 100);
    writeFileSync(slowNow, '');
    t.teardown(() => existsSync(slowNow) && unlinkSync(slowNow));
    const started = Date.now();
    const payment = pay(paygress.base, token);
    await sleep(2000);
    const meanwhile = await metric(paygress.base, running);
    t.ok(
      meanwhile >= 1.5 && meanwhile < 6,
      `the sync under way is seen running (${meanwhile} s)`,
    );
    t.equal(await payment, 200, 'the payment is taken once the sync ends');
    unlinkSync(slowNow);
    t.ok(Date.now() - started >= 6000, 'after waiting for it');
    t.equal(await metric(paygress.base, running), 0, 'none runs after');
    t.equal(
      await metric(paygress.base, count),
      before + 1,
      'the slow sync is counted',
    );
    t.equal(
      await metric(paygress.base, pastFive),
      before,
      'past the 5 s bucket',
    );
    const log = paygress.output();
    t.match(
      log,
      /"level":40.*a sync of the wallet store has run over 5 s and not ended: payments wait for it; is the data volume failing\?/,
      'a warning while it runs',
    );
    t.match(
      log,
      /"level":40.*the slow sync of the wallet store ended after 6\.\d s/,
      'and one at its end',
    );
  },
);
