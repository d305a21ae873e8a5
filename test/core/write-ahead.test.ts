/**
 * The swap leaves for the mint only once its record is on disk: with the
 * real dev mint, gateway and store, the store's `durable()` held back or
 * failing as a disk would. A disk that refuses refuses the payment as
 * Paygress's fault, sends nothing, keeps nothing, and leaves the token
 * good. A power cut after the record was synced, which loses the swap's
 * completion, loses no money: settling restores what the mint signed.
 */
import t, { type Test } from 'tap';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { StoreFailedError } from '../../src/core/errors.ts';
import { Redeemer } from '../../src/core/redeemer.ts';
import { ReplayGuard } from '../../src/core/replay-guard.ts';
import { startDevMint, type DevMint } from '../../src/devmint/index.ts';
import { CashuMintGateway } from '../../src/mint/cashu-gateway.ts';
import {
  SqliteWalletStore,
  WALLET_FILE,
} from '../../src/store/sqlite-wallet-store.ts';
import { mintParsedToken } from '../support/wallet.ts';

interface Rig {
  mint: DevMint;
  store: SqliteWalletStore;
  redeemer: Redeemer;
  /** Swaps the gateway has sent to the mint. */
  sent(): number;
  /**
   * What `store.durable()` waits for before doing its work, whether it
   * fails, and what runs once it has put the record on disk.
   */
  disk: { ready: Promise<void>; fails: boolean; synced?: () => void };
  dataDir: string;
}

async function rig(t: Test): Promise<Rig> {
  const mint = await startDevMint();
  const dataDir = mkdtempSync(join(tmpdir(), 'paygress-write-ahead-'));
  const store = new SqliteWalletStore({ dataDir });
  const gateway = new CashuMintGateway({ mints: [mint.url], timeoutMs: 2000 });
  t.teardown(async () => {
    await gateway.close();
    store.close();
    await mint.close();
    rmSync(dataDir, { recursive: true, force: true });
  });
  let sent = 0;
  const completeSwap = gateway.completeSwap.bind(gateway);
  gateway.completeSwap = (...args) => {
    sent++;
    return completeSwap(...args);
  };
  const disk: Rig['disk'] = { ready: Promise.resolve(), fails: false };
  const durable = store.durable.bind(store);
  store.durable = async () => {
    await disk.ready;
    if (disk.fails) {
      throw new StoreFailedError(
        'the wallet store could not put its records on disk',
        { cause: Object.assign(new Error('EIO'), { code: 'EIO' }) },
      );
    }
    await durable();
    disk.synced?.();
  };
  const guard = new ReplayGuard({ cacheSize: 1000, store });
  const redeemer = new Redeemer({
    gateway,
    store,
    guard,
    clock: { now: () => Date.now() },
  });
  return { mint, store, redeemer, sent: () => sent, disk, dataDir };
}

const tokenOf = async (mintUrl: string, amount: number) =>
  (await mintParsedToken(mintUrl, amount)).parsed;

const available = (store: SqliteWalletStore) =>
  store.balances().reduce((n, b) => n + b.available, 0);

t.test('the swap waits until its record is on disk', async (t) => {
  const r = await rig(t);
  const token = await tokenOf(r.mint.url, 100);
  let flushed!: () => void;
  r.disk.ready = new Promise((resolve) => (flushed = resolve));

  const paying = r.redeemer.redeem(token, 100);
  await sleep(300);
  t.equal(r.sent(), 0, 'nothing sent while the disk is still writing');
  t.equal(r.store.unfinished().length, 1, 'the record is written, pending');

  flushed();
  const redemption = await paying;
  t.equal(redemption.amount, 100, 'paid once the record is on disk');
  t.equal(r.sent(), 1, 'one swap sent');
  t.equal(available(r.store), 100, 'its proofs are stored');
});

t.test(
  'a disk that refuses: refused as our fault, nothing sent or kept',
  async (t) => {
    const r = await rig(t);
    const token = await tokenOf(r.mint.url, 100);
    r.disk.fails = true;
    await t.rejects(r.redeemer.redeem(token, 100), {
      code: 'PAYGRESS_STORE_FAILED',
      fault: 'ours',
    });
    t.equal(r.sent(), 0, 'the swap never left');
    t.equal(r.store.unfinished().length, 0, 'no pending redemption kept');
    t.equal(r.store.released([], 0).length, 0, 'nor a released one');

    r.disk.fails = false;
    const redemption = await r.redeemer.redeem(token, 100);
    t.equal(redemption.amount, 100, 'the same token pays once the disk works');
    t.equal(available(r.store), 100);
  },
);

t.test(
  'a completion a power cut lost: the record on disk recovers the payment',
  async (t) => {
    const r = await rig(t);
    const token = await tokenOf(r.mint.url, 100);
    // The disk as a power cut right after the record was synced leaves it:
    // what was written up to then, and nothing after. (That durable() did
    // put it on disk is test/store/syncs.test.ts's to show.)
    const cut = mkdtempSync(join(tmpdir(), 'paygress-write-ahead-cut-'));
    t.teardown(() => rmSync(cut, { recursive: true, force: true }));
    r.disk.synced = () => {
      for (const file of [WALLET_FILE, `${WALLET_FILE}-wal`]) {
        copyFileSync(join(r.dataDir, file), join(cut, file));
      }
    };
    t.equal((await r.redeemer.redeem(token, 100)).amount, 100, 'paid');

    const store = new SqliteWalletStore({ dataDir: cut });
    t.teardown(() => store.close());
    t.equal(store.unfinished().length, 1, 'after the cut: pending');
    const gateway = new CashuMintGateway({ mints: [r.mint.url] });
    t.teardown(() => gateway.close());
    const redeemer = new Redeemer({
      gateway,
      store,
      guard: new ReplayGuard({ cacheSize: 1000, store }),
      clock: { now: () => Date.now() },
    });
    t.match(
      await redeemer.settleAll(),
      { completed: 1 },
      'settled at start: the mint ran it, its outputs restored',
    );
    t.equal(available(store), 100, 'every sat in the store');
    // The answer's delivery went with the cut: the token buys its request
    // once more, and only once.
    const owed = await redeemer.redeem(token, 100);
    t.equal(owed.amount, 100, 'owed once');
    await t.rejects(
      redeemer.redeem(token, 100),
      { code: 'PAYGRESS_TOKEN_PENDING' },
      'not to another request while that one answers',
    );
    store.delivered(owed.id);
    await t.rejects(redeemer.redeem(token, 100), {
      code: 'PAYGRESS_TOKEN_REPLAYED',
    });
  },
);

t.test(
  'durable() of a closed store rejects with a store failure',
  async (t) => {
    const dataDir = mkdtempSync(join(tmpdir(), 'paygress-write-ahead-'));
    t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
    const store = new SqliteWalletStore({ dataDir });
    await store.durable();
    store.close();
    await t.rejects(store.durable(), {
      code: 'PAYGRESS_STORE_FAILED',
      message: 'the wallet store is closed',
    });
    t.notOk(store.failed, 'a closed store is not a failed one');
  },
);
