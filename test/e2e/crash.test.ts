/**
 * Kill -9 at random points loses no redeemed sat. Paygress runs as a child
 * process and redeems a stream of tokens four at a time; it is killed with
 * SIGKILL again and again, half of the time while the mint holds swaps for
 * 300 ms so that kills land between the swap request and its answer, and
 * started again on the same data directory. At the end, to the sat: every
 * token spent at the mint is stored in the wallet, every token not spent
 * is still good, nothing is left pending and no token bought two requests
 * (a token whose request was cut off after its swap ran may buy one).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isDeepStrictEqual } from 'node:util';
import t from 'tap';
import { getEncodedToken, type Wallet } from '@cashu/cashu-ts';
import { computeY, encodeToken } from '../../src/core/token.ts';
import { startDevMint } from '../../src/devmint/index.ts';
import { SqliteWalletStore } from '../../src/store/sqlite-wallet-store.ts';
import {
  startPaygressProcess,
  type PaygressProcess,
} from '../support/paygress-process.ts';
import { mintProofs, testWallet } from '../support/wallet.ts';

const PRICE = 8;
const TOKENS = 200;
const KILLS = 20;
const CONCURRENCY = 4;
const SWAP_DELAY_MS = 300;

// Reproduce a failing run with CRASH_SEED=<seed printed in the output>.
const seed = Number(process.env.CRASH_SEED ?? Date.now() % 2 ** 31);
const random = mulberry32(seed);
const between = (lo: number, hi: number) =>
  lo + Math.floor(random() * (hi - lo + 1));

type Outcome =
  | { kind: 'allowed'; amount: number }
  | { kind: 'refused'; reason: string }
  | { kind: 'error' };

interface Payment {
  readonly token: string;
  readonly amount: number;
  readonly ys: readonly string[];
  /** What the client saw when it was first sent. */
  first?: Outcome;
  /** Unspent at the mint right after a kill that cut its request off. */
  unspentAtKill?: boolean;
}

const mint = await startDevMint();
const dataDir = mkdtempSync(join(tmpdir(), 'paygress-crash-'));
let paygress: PaygressProcess | undefined;
t.teardown(async () => {
  await paygress?.kill();
  await mint.close();
  rmSync(dataDir, { recursive: true, force: true });
});
t.comment(`CRASH_SEED=${seed}`);
// Twenty-odd cold starts of a Node process dominate; bound the whole run.
t.setTimeout(170_000);

const proc = await startPaygressProcess({
  mintUrl: mint.url,
  dataDir,
  price: PRICE,
  env: {
    PAYGRESS_GRANT_KEY: 'crash-test-grant-key-of-at-least-32-bytes',
    PAYGRESS_MINT_TIMEOUT_MS: '5000',
  },
});
paygress = proc;

// Minting is EC work in this process: it goes on while Paygress restarts,
// feeding a queue that the rounds below send from.
const payments: Payment[] = [];
const queue: Payment[] = [];
let minted = false;
const minting = mintPayments(await testWallet(mint.url), TOKENS, (p) => {
  payments.push(p);
  queue.push(p);
}).finally(() => (minted = true));
t.teardown(() => minting.catch(() => {}));
let kills = 0;

t.test('redemptions survive SIGKILL at random points', async (t) => {
  let midSwapKills = 0;
  for (let kill = 0; kill < KILLS; kill++) {
    while (queue.length < 2 * CONCURRENCY && !minted) await sleep(10);
    const slow = kill % 2 === 1;
    mint.setFault(
      'swap',
      slow ? { kind: 'delay', ms: SWAP_DELAY_MS } : undefined,
    );
    const cut = await runRound(proc, queue, slow ? 'slow' : 'fast');

    // Let swaps the mint still holds finish, so the restart can tell
    // whether each one ran; then start-up must settle all of them.
    if (slow) await sleep(SWAP_DELAY_MS + 100);
    await proc.start();
    t.equal(unfinished(), 0, `restart ${kill + 1} settled every redemption`);
    if (cut.some((p) => p.unspentAtKill && spentAtMint(p))) midSwapKills++;
  }
  mint.setFault('swap', undefined);
  await minting;
  await runRound(proc, queue, 'drain');
  t.equal(kills, KILLS, 'Paygress was killed with SIGKILL every round');
  t.ok(
    payments.every((p) => p.first !== undefined),
    'every token was sent',
  );
  t.equal(payments.length, TOKENS, 'at least 200 redemptions');

  const spentMidSwap = payments.filter(
    (p) => p.unspentAtKill && spentAtMint(p),
  );
  t.comment(
    `${count('allowed')} allowed, ${count('refused')} refused, ${count('error')} cut off; ` +
      `${midSwapKills} kills with swaps in flight, ${spentMidSwap.length} swaps ran after the kill`,
  );
  t.ok(midSwapKills >= 5, 'kills landed between swap request and answer');

  // Before anything is sent again: the wallet holds, to the sat, the value
  // of exactly the tokens the mint counts as spent.
  const store = new SqliteWalletStore({ dataDir });
  t.teardown(() => store.close());
  const spentValue = payments
    .filter(spentAtMint)
    .reduce((sum, p) => sum + p.amount, 0);
  t.same(store.balances(), [
    { mint: mint.url, unit: 'sat', available: spentValue, pending: 0 },
  ]);

  for (const p of payments) {
    const spent = p.ys.map((y) => mint.isSpent(y));
    const redeemed = store.findRedeemed(p.ys);
    if (spent.every(Boolean)) {
      t.same(redeemed, { y: p.ys[0], pending: false }, 'spent and stored');
    } else {
      t.equal(redeemed, undefined, 'unspent and not recorded');
    }
    const kind = p.first!.kind;
    if (kind === 'allowed') {
      t.ok(spent.every(Boolean), 'an allowed token is spent at the mint');
      t.same(p.first, { kind, amount: p.amount }, 'overpayment is kept');
    }
    if (kind === 'refused') {
      t.notOk(
        spent.some(Boolean),
        `a refused token (${p.first!.reason}) is not spent`,
      );
    }
    t.ok(spent.every(Boolean) || !spent.some(Boolean), 'all or nothing');
  }
});

t.test('cut-off tokens get their request once; none pays twice', async (t) => {
  const replayed = { kind: 'refused', reason: 'PAYGRESS_TOKEN_REPLAYED' };
  const paid = (p: Payment) => ({ kind: 'allowed', amount: p.amount });

  const second = await pool(payments, async (p) => {
    const spent = spentAtMint(p);
    return { p, spent, again: await redeem(proc.base, p) };
  });
  for (const { p, spent, again } of second) {
    if (!spent) {
      t.not(p.first!.kind, 'allowed', 'an unspent token was never allowed');
      t.same(again, paid(p), 'an unspent token is usable again');
    } else if (p.first!.kind === 'allowed') {
      t.same(again, replayed, 'an allowed token is a replay');
    } else {
      // The swap ran but the client never heard: a swap settled at
      // start-up is owed its request once; one answered just before the
      // kill was already delivered.
      t.ok(
        isDeepStrictEqual(again, paid(p)) || isDeepStrictEqual(again, replayed),
        'a cut-off spent token is owed once or was delivered',
      );
    }
  }
  t.ok(payments.every(spentAtMint), 'every token is now spent at the mint');

  const third = await pool(payments, (p) => redeem(proc.base, p));
  t.ok(
    third.every((o) => isDeepStrictEqual(o, replayed)),
    'sent once more, every token is a replay',
  );
  const allowedTwice = second.filter(
    ({ p, again }) => p.first!.kind === 'allowed' && again.kind === 'allowed',
  );
  t.equal(allowedTwice.length, 0, 'no token was allowed twice');
  const owed = second.filter(
    ({ p, again }) => p.first!.kind === 'error' && again.kind === 'allowed',
  );
  t.comment(`${owed.length} cut-off tokens got their request on the retry`);
});

t.test('the wallet holds exactly the value paid, in good proofs', async (t) => {
  await proc.stop();
  const store = new SqliteWalletStore({ dataDir });
  t.teardown(() => store.close());

  t.same(store.unfinished(), [], 'no redemption left pending');
  const paid = payments.reduce((sum, p) => sum + p.amount, 0);
  t.same(store.balances(), [
    { mint: mint.url, unit: 'sat', available: paid, pending: 0 },
  ]);
  for (const p of payments) {
    t.same(store.findRedeemed(p.ys), { y: p.ys[0], pending: false });
  }

  // Spend the stored proofs with a separate wallet: the mint takes them.
  const proofs = store.unspent(mint.url, 'sat');
  const token = encodeToken(mint.url, 'sat', proofs);
  const received = await (await testWallet(mint.url)).receive(token);
  t.equal(
    received.reduce((sum, r) => sum + r.amount.toNumber(), 0),
    paid,
    'the mint accepts every stored proof',
  );
});

/**
 * Sends payments from `queue`, four at a time, and kills Paygress partway:
 * in a slow round once some swaps wait at the mint, in a fast one after a
 * random number of answers; a drain round sends the rest without a kill.
 * Resolves with the payments whose request the kill cut off.
 */
async function runRound(
  proc: PaygressProcess,
  queue: Payment[],
  mode: 'fast' | 'slow' | 'drain',
): Promise<Payment[]> {
  let killed = false;
  let done = 0;
  const inFlight = new Set<Payment>();
  const worker = async () => {
    for (let p = queue.shift(); p; p = killed ? undefined : queue.shift()) {
      inFlight.add(p);
      p.first = await redeem(proc.base, p);
      inFlight.delete(p);
      done++;
    }
  };
  const swapsBefore = mint.requests('swap');
  const workers = Array.from({ length: CONCURRENCY }, worker);
  if (mode === 'drain') {
    await Promise.all(workers);
    return [];
  }

  const perRound = Math.ceil(TOKENS / KILLS);
  const target = between(1, mode === 'slow' ? CONCURRENCY : perRound);
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && inFlight.size + queue.length > 0) {
    const reached =
      mode === 'slow' ? mint.requests('swap') - swapsBefore : done;
    if (reached >= target) break;
    await sleep(1);
  }
  await sleep(
    mode === 'slow' ? between(0, SWAP_DELAY_MS - 50) : between(0, 15),
  );
  killed = true;
  const cut = [...inFlight];
  await proc.kill();
  kills++;
  for (const p of cut) p.unspentAtKill = !p.ys.some((y) => mint.isSpent(y));

  await Promise.all(workers);
  return cut.filter((p) => p.first?.kind === 'error');
}

async function redeem(base: string, p: Payment): Promise<Outcome> {
  let res: Response;
  try {
    res = await fetch(`${base}/auth/forward`, {
      headers: {
        'X-Cashu': p.token,
        'X-Forwarded-Method': 'GET',
        'X-Forwarded-Proto': 'https',
        'X-Forwarded-Host': 'app.example',
        'X-Forwarded-Uri': '/premium',
      },
      signal: AbortSignal.timeout(15_000),
    });
    await res.text();
  } catch {
    return { kind: 'error' };
  }
  if (res.status === 200) {
    return {
      kind: 'allowed',
      amount: Number(res.headers.get('x-payment-amount')),
    };
  }
  return {
    kind: 'refused',
    reason: res.headers.get('x-paygress-reason') ?? `HTTP ${res.status}`,
  };
}

async function mintPayments(
  wallet: Wallet,
  n: number,
  ready: (p: Payment) => void,
): Promise<void> {
  // 8 to 64 sat in few proofs each: every proof costs EC work at both ends.
  const multiples = [1, 2, 3, 4, 6, 8];
  const amounts = Array.from(
    { length: n },
    () => PRICE * multiples[between(0, multiples.length - 1)]!,
  );
  await pool(amounts, async (amount) => {
    const proofs = await mintProofs(mint.url, amount, { wallet });
    ready({
      token: getEncodedToken({ mint: mint.url, unit: 'sat', proofs }),
      amount,
      ys: proofs.map((p) => computeY(p.secret)),
    });
  });
}

function spentAtMint(p: Payment): boolean {
  return p.ys.every((y) => mint.isSpent(y));
}

function unfinished(): number {
  const store = new SqliteWalletStore({ dataDir });
  try {
    return store.unfinished().length;
  } finally {
    store.close();
  }
}

function count(kind: Outcome['kind']): number {
  return payments.filter((p) => p.first?.kind === kind).length;
}

async function pool<T, R>(
  items: readonly T[],
  work: (item: T) => Promise<R>,
): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let i = 0;
  const worker = async () => {
    while (i < items.length) {
      const at = i++;
      out[at] = await work(items[at]!);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return out;
}

function mulberry32(a: number): () => number {
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}
