/**
 * What becomes of a swap Paygress gave up on. Kept aside while the mint
 * may still run it (the late-swap window), looked at once more past it:
 * completed if it ran, forgotten if it did not, so that neither money nor
 * a page of the store is left behind. One never sent leaves nothing.
 * With the real dev mint, gateway and store, on a clock of the test's.
 */
import t, { type Test } from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { getEncodedToken, type Proof } from '@cashu/cashu-ts';
import type { ParsedToken } from '../../src/core/token.ts';
import type { Fault } from '../../src/devmint/faults.ts';
import { Redeemer } from '../../src/core/redeemer.ts';
import { ReplayGuard } from '../../src/core/replay-guard.ts';
import { startDevMint, type DevMint } from '../../src/devmint/index.ts';
import { CashuMintGateway } from '../../src/mint/cashu-gateway.ts';
import { SqliteWalletStore } from '../../src/store/sqlite-wallet-store.ts';
import { mintParsedToken, testWallet } from '../support/wallet.ts';

/** Past the late-swap window of src/core/redeemer.ts. */
const PAST_WINDOW = 10 * 60_000 + 1;

interface Rig {
  mint: DevMint;
  store: SqliteWalletStore;
  redeemer: Redeemer;
  /**
   * Added to the time Paygress reads: `ahead` to the wall clock and the
   * monotonic one alike (time passing), `stepped` to the wall clock only
   * (a clock stepped forward).
   */
  clock: { ahead: number; stepped: number };
  /** Swap records kept. */
  swaps(): number;
}

async function rig(t: Test, expiredBatch?: number): Promise<Rig> {
  const mint = await startDevMint();
  const dataDir = mkdtempSync(join(tmpdir(), 'paygress-released-'));
  const store = new SqliteWalletStore({ dataDir });
  const gateway = new CashuMintGateway({
    mints: [mint.url],
    timeoutMs: 1000,
  });
  t.teardown(async () => {
    await gateway.close();
    store.close();
    await mint.close().catch(() => undefined);
    rmSync(dataDir, { recursive: true, force: true });
  });
  const clock = { ahead: 0, stepped: 0 };
  const guard = new ReplayGuard({ cacheSize: 1000, store });
  const redeemer = new Redeemer({
    gateway,
    store,
    guard,
    clock: { now: () => Date.now() + clock.ahead + clock.stepped },
    monotonic: () => performance.now() + clock.ahead,
    ...(expiredBatch !== undefined && { expiredBatch }),
  });
  const swaps = () => store.released([], 0).length + store.unfinished().length;
  return { mint, store, redeemer, clock, swaps };
}

const tokenOf = mintParsedToken;

function encoded(mintUrl: string, proofs: Proof[]): string {
  return getEncodedToken({ mint: mintUrl, unit: 'sat', proofs });
}

/**
 * Redeems `token` while the mint's swaps meet `fault`: refused (with
 * `code`, when given), the swap given up on; then the fault is lifted.
 */
async function giveUp(
  t: Test,
  r: Rig,
  token: ParsedToken,
  fault: Fault,
  code?: string,
): Promise<void> {
  r.mint.setFault('swap', fault);
  const paying = r.redeemer.redeem(token, 100);
  await (code ? t.rejects(paying, { code }) : t.rejects(paying));
  r.mint.setFault('swap', undefined);
}

const available = (store: SqliteWalletStore) =>
  store.balances().reduce((n, b) => n + b.available, 0);

t.test(
  'spent elsewhere while ours was queued: kept a while, then forgotten',
  async (t) => {
    const r = await rig(t);
    const { proofs, parsed } = await tokenOf(r.mint.url, 100);
    r.mint.setFault('swap', { kind: 'queue', ms: 2500 });
    const paying = r.redeemer.redeem(parsed, 100);
    await sleep(300);
    r.mint.setFault('swap', undefined);
    await (await testWallet(r.mint.url)).receive(encoded(r.mint.url, proofs));
    await t.rejects(paying, { code: 'PAYGRESS_TOKEN_REPLAYED' });
    await sleep(2500); // our queued swap runs, and fails

    t.equal(r.swaps(), 1, 'kept for the window');
    await r.redeemer.settleAll();
    t.equal(r.swaps(), 1, 'still, within it');
    r.clock.ahead += PAST_WINDOW;
    await r.redeemer.settleAll();
    t.equal(r.swaps(), 0, 'forgotten past it');
    t.equal(available(r.store), 0, 'nothing was paid to us');
  },
);

t.test(
  'run late and never looked at in the window: completed past it',
  async (t) => {
    const r = await rig(t);
    const { parsed } = await tokenOf(r.mint.url, 100);
    await giveUp(
      t,
      r,
      parsed,
      { kind: 'queue', ms: 1500 },
      'PAYGRESS_MINT_UNAVAILABLE',
    );
    await sleep(1000); // it runs at the mint, late
    t.equal(r.swaps(), 1);

    r.clock.ahead += PAST_WINDOW;
    await r.redeemer.settleAll();
    t.equal(r.swaps(), 0);
    t.equal(available(r.store), 100, 'what the mint took is ours, stored');
  },
);

t.test(
  'never run: forgotten past the window, the token still good',
  async (t) => {
    const r = await rig(t);
    const { proofs, parsed } = await tokenOf(r.mint.url, 100);
    await giveUp(
      t,
      r,
      parsed,
      { kind: 'status', status: 500 },
      'PAYGRESS_MINT_ERROR',
    );
    t.equal(r.swaps(), 1, 'kept: a 500 may hide a swap that ran');

    // The mint cannot say now: kept for the next pass.
    r.clock.ahead += PAST_WINDOW;
    r.mint.setFault('checkstate', { kind: 'status', status: 500 });
    await r.redeemer.settleAll();
    t.equal(r.swaps(), 1, 'unsure: kept');
    r.mint.setFault('checkstate', undefined);
    await r.redeemer.settleAll();
    t.equal(r.swaps(), 0, 'forgotten once the mint says it did not run');

    const back = await (
      await testWallet(r.mint.url)
    ).receive(encoded(r.mint.url, proofs));
    t.equal(
      back.reduce((n, p) => n + p.amount.toNumber(), 0),
      100,
    );
  },
);

t.test('never sent (the mint down): nothing kept, however often', async (t) => {
  const r = await rig(t);
  const paid = await tokenOf(r.mint.url, 100);
  await r.redeemer.redeem(paid.parsed, 100); // the mint's keys are known
  const { parsed } = await tokenOf(r.mint.url, 100);
  await r.mint.close();
  await sleep(200); // the kept connection seen closed: each try is refused
  for (let i = 0; i < 5; i++) {
    await t.rejects(r.redeemer.redeem(parsed, 100), {
      code: 'PAYGRESS_MINT_UNAVAILABLE',
    });
  }
  t.equal(r.swaps(), 0);
});

t.test('one the mint cannot settle does not hold up the rest', async (t) => {
  const r = await rig(t, 1);
  // Released first, of a mint no longer configured: never settled.
  r.store.begin({
    id: 'stuck',
    mint: 'http://127.0.0.1:1',
    unit: 'sat',
    amount: 8,
    ys: [`02${'5'.repeat(64)}`],
    swap: { serialized: '{}', outputAmount: 8 },
    createdAt: 1,
  });
  r.store.release('stuck');
  const { parsed } = await tokenOf(r.mint.url, 100);
  await giveUp(t, r, parsed, { kind: 'status', status: 500 });
  const ids = () => r.store.released([], 0).map((x) => x.id);
  t.equal(ids().length, 2);

  r.clock.ahead += PAST_WINDOW;
  await r.redeemer.settleAll(); // looks at 'stuck' alone: unsure
  t.equal(ids().length, 2);
  await r.redeemer.settleAll(); // passes over it
  t.same(ids(), ['stuck'], 'the other forgotten');
  await r.redeemer.settleAll();
  await r.redeemer.settleAll(); // a new sweep: 'stuck' again, still kept
  t.same(ids(), ['stuck']);
});

t.test('a clock stepped forward does not end the window', async (t) => {
  const r = await rig(t);
  const { parsed } = await tokenOf(r.mint.url, 100);
  await giveUp(
    t,
    r,
    parsed,
    { kind: 'queue', ms: 4000 },
    'PAYGRESS_MINT_UNAVAILABLE',
  );
  r.clock.stepped += PAST_WINDOW; // NTP, a VM resumed: the swap still queued
  await r.redeemer.settleAll();
  t.equal(r.swaps(), 1, 'kept: the window is counted in time that passed');

  await sleep(3500); // the queued swap runs
  r.clock.ahead += PAST_WINDOW;
  await r.redeemer.settleAll();
  t.equal(r.swaps(), 0);
  t.equal(available(r.store), 100, 'what the mint took is ours, stored');
});

t.test('one settling pass at a time', async (t) => {
  const r = await rig(t);
  const { parsed } = await tokenOf(r.mint.url, 100);
  await giveUp(t, r, parsed, { kind: 'status', status: 500 });
  const before = r.mint.requests('checkstate');
  r.mint.setFault('checkstate', { kind: 'delay', ms: 300 });

  const first = r.redeemer.settleAll();
  const second = r.redeemer.settleAll(); // while the first waits on the mint
  t.equal(second, first, 'the call gets the pass under way');
  await first;
  t.equal(r.mint.requests('checkstate') - before, 1, 'the mint asked once');
  r.mint.setFault('checkstate', undefined);
  await r.redeemer.settleAll();
  t.equal(r.mint.requests('checkstate') - before, 2, 'a later call, a pass');
});
