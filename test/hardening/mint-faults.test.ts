/**
 * Paygress in front of a failing mint: refused connections, hangs, answers
 * past the deadline, HTTP 500, invalid JSON, proofs already spent or
 * pending elsewhere, and a keyset rotated while running. Each fault gets
 * its documented reason (docs/reason-codes.md); once it clears a fresh
 * token is allowed, and the wallet store holds exactly the sats Paygress
 * was paid: those of the allowed requests plus those of redemptions the
 * mint finished after Paygress had given up waiting, recovered on settling.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { Test } from 'tap';
import { getDecodedToken, getEncodedToken } from '@cashu/cashu-ts';
import { computeY } from '../../src/core/token.ts';
import { startDevMint } from '../../src/devmint/index.ts';
import {
  mintProofWithSecret,
  mintToken,
  testWallet,
} from '../support/wallet.ts';
import { send, startStack, type Stack } from '../support/stack.ts';

const PRICE = 100;
const mint = await startDevMint();
const dataDir = mkdtempSync(join(tmpdir(), 'paygress-faults-'));
let stack: Stack = await startStack({ price: PRICE, mint, dataDir });
t.teardown(async () => {
  await stack.close();
  await mint.close();
  rmSync(dataDir, { recursive: true, force: true });
});

/** Sats Paygress was paid: allowed requests and recovered redemptions. */
let paid = 0;
const stored = () =>
  stack.app.store.balances().reduce((sum, b) => sum + b.available, 0);
const pending = () =>
  stack.app.store.balances().reduce((sum, b) => sum + b.pending, 0);
const ys = new Map<string, string[]>();

/** Remembers the Ys of a token while the mint still lists its keyset. */
async function track(token: string): Promise<string> {
  const answer = await fetch(`${mint.url}/v1/keysets`);
  const { keysets } = (await answer.json()) as { keysets: { id: string }[] };
  const proofs = getDecodedToken(
    token,
    keysets.map((k) => k.id),
  ).proofs;
  ys.set(
    token,
    proofs.map((p) => computeY(p.secret)),
  );
  return token;
}
const spentAtMint = (token: string) => ys.get(token)!.every(mint.isSpent, mint);

/** A fresh token is allowed and the store holds exactly what was paid. */
async function recovers(t: Test): Promise<void> {
  const token = await track(await mintToken(mint.url, PRICE));
  const out = await send(stack, 'forward', { 'X-Cashu': token });
  t.equal(out.allowed, true, 'a fresh token is allowed after the fault');
  if (out.allowed) paid += PRICE;
  t.equal(stored(), paid, 'the store holds exactly the sats paid');
}

t.test('connection refused: unavailable, nothing kept', async (t) => {
  const token = await track(await mintToken(mint.url, PRICE));
  await mint.stop();
  const out = await send(stack, 'forward', { 'X-Cashu': token });
  await mint.start();

  t.equal(out.status, 503);
  t.equal(out.reason, 'PAYGRESS_MINT_UNAVAILABLE');
  t.equal(spentAtMint(token), false, 'the mint never saw the swap');
  t.equal(pending(), 0, 'released at once: nothing to settle');
  await recovers(t);
});

for (const [name, fault] of [
  ['HTTP 500', { kind: 'status', status: 500 }],
  ['invalid JSON', { kind: 'garbage' }],
] as const) {
  t.test(`${name}: mint error, settled unspent, retry works`, async (t) => {
    const token = await track(await mintToken(mint.url, PRICE));
    mint.setFault('swap', fault);
    const out = await send(stack, 'nginx', { 'X-Cashu': token });
    mint.setFault('swap', undefined);

    t.equal(out.status, 503);
    t.equal(out.reason, 'PAYGRESS_MINT_ERROR');
    t.equal(pending(), 0, 'settled as not spent');
    const retry = await send(stack, 'nginx', { 'X-Cashu': token });
    t.equal(retry.allowed, true, 'the same token is good once the mint is');
    if (retry.allowed) paid += PRICE;
    await recovers(t);
  });
}

t.test('already spent at the mint: replayed, nothing stored', async (t) => {
  const token = await track(await mintToken(mint.url, PRICE));
  const other = await testWallet(mint.url);
  await other.receive(token);

  const out = await send(stack, 'ext-authz', { 'x-cashu': token });
  t.equal(out.status, 402);
  t.equal(out.reason, 'PAYGRESS_TOKEN_REPLAYED');
  const again = await send(stack, 'forward', { 'X-Cashu': token });
  t.equal(again.reason, 'PAYGRESS_TOKEN_REPLAYED', 'and stays refused');
  await recovers(t);
});

t.test('pending in a concurrent swap elsewhere: pending', async (t) => {
  const token = await track(await mintToken(mint.url, PRICE));
  const other = await testWallet(mint.url);
  const swaps = mint.requests('swap');
  mint.setFault('swap', { kind: 'delay', ms: 1500 });
  const receiving = other.receive(token);
  await until(() => mint.requests('swap') > swaps);

  const out = await send(stack, 'forward', { 'X-Cashu': token });
  await receiving;
  mint.setFault('swap', undefined);

  t.equal(out.status, 402);
  t.equal(out.reason, 'PAYGRESS_TOKEN_PENDING');
  const after = await send(stack, 'forward', { 'X-Cashu': token });
  t.equal(after.reason, 'PAYGRESS_TOKEN_REPLAYED', 'spent by the other');
  await recovers(t);
});

t.test(
  "a payer's secrets change neither how the mint's words read nor their size",
  async (t) => {
    // Secrets of any form are allowed: letters of "[redacted]" and the
    // very words Paygress reads a refusal by.
    const proofs = [];
    for (const [secret, amount] of [
      ['e', 64],
      ['d', 16],
      ['[', 8],
      [']', 4],
      ['r', 2],
      ['a', 2],
      ['c', 2],
      ['t', 2],
      ['spent', 1],
      ['signed', 1],
    ] as const) {
      proofs.push(await mintProofWithSecret(mint.url, amount, secret));
    }
    const token = await track(
      getEncodedToken({ mint: mint.url, unit: 'sat', proofs }),
    );
    const refusals: [object, string][] = [
      // Our outputs signed before: the mint is asked what ran.
      [
        { code: 10002, detail: 'outputs have already been signed before.' },
        'PAYGRESS_MINT_ERROR',
      ],
      [{ code: 0, detail: 'Token already spent.' }, 'PAYGRESS_TOKEN_REPLAYED'],
      // A detail of a quarter of a megabyte, most of it one secret.
      [
        { code: 11005, detail: `unbalanced: ${'e '.repeat(128 * 1024)}` },
        'PAYGRESS_MINT_ERROR',
      ],
    ];
    for (const [refusal, reason] of refusals) {
      const checks = mint.requests('checkstate');
      mint.setFault('swap', { kind: 'refuse', ...refusal } as never);
      const started = performance.now();
      const out = await send(stack, 'forward', { 'X-Cashu': token });
      const took = performance.now() - started;
      mint.setFault('swap', undefined);
      t.equal(out.reason, reason, JSON.stringify(refusal).slice(0, 60));
      t.ok(took < 5000, `answered in ${Math.round(took)} ms, not stalled`);
      if (reason === 'PAYGRESS_MINT_ERROR') {
        t.ok(String(out.body).length < 1000, 'an answer of bounded size');
      }
      if ((refusal as { code: number }).code === 10002) {
        t.ok(mint.requests('checkstate') > checks, 'the mint is asked');
      }
    }
    const out = await send(stack, 'forward', { 'X-Cashu': token });
    t.equal(out.allowed, true, 'the token was good all along, and pays');
    if (out.allowed) paid += 102;
    t.equal(stored(), paid);
  },
);

t.test('a refusal read by its code when its detail is not text', async (t) => {
  const token = await track(await mintToken(mint.url, PRICE));
  // NUT-00 error answers carry a string detail; one without, or with an
  // object, is still the code's refusal, not a fault of the mint.
  for (const detail of [undefined, { reason: 'spent' }]) {
    mint.setFault('swap', { kind: 'refuse', code: 11001, detail } as never);
    const out = await send(stack, 'forward', { 'X-Cashu': token });
    mint.setFault('swap', undefined);
    t.equal(out.reason, 'PAYGRESS_TOKEN_REPLAYED', `detail ${typeof detail}`);
  }
  const out = await send(stack, 'forward', { 'X-Cashu': token });
  t.equal(out.allowed, true, 'not spent after all: the token pays');
  if (out.allowed) paid += PRICE;
  t.equal(stored(), paid);
});

t.test(
  'the mint refuses the swap Paygress built: ours, the token stays good',
  async (t) => {
    const token = await track(await mintToken(mint.url, PRICE));
    // An unbalanced swap (as a fee computed wrong would make), numbered as
    // the NUT table numbers it now and as mints of its earlier numbering
    // did (11002, now pending): nothing ran, nothing to ask.
    for (const refusal of [
      {
        code: 11005,
        detail: 'Transaction is not balanced (inputs != outputs)',
      },
      {
        code: 11002,
        detail: 'Transaction is not balanced (inputs != outputs)',
      },
    ]) {
      const swaps = mint.requests('swap');
      const checks = mint.requests('checkstate');
      mint.setFault('swap', { kind: 'refuse', ...refusal });
      const out = await send(stack, 'forward', { 'X-Cashu': token });
      mint.setFault('swap', undefined);
      t.equal(out.status, 503, `${refusal.code}: a fault of ours`);
      t.equal(out.reason, 'PAYGRESS_MINT_ERROR', `${refusal.code}`);
      t.equal(mint.requests('swap'), swaps + 1, 'sent, breaker closed');
      t.equal(mint.requests('checkstate'), checks, 'nothing to ask the mint');
    }
    // Our outputs signed before (10002 before, 11003 now): only this swap
    // delivered twice can have done that, so the mint is asked what ran;
    // here nothing did.
    for (const refusal of [
      { code: 10002, detail: 'Blinded message of output already signed' },
      { code: 11003, detail: 'outputs have already been signed before' },
    ]) {
      const checks = mint.requests('checkstate');
      mint.setFault('swap', { kind: 'refuse', ...refusal });
      const out = await send(stack, 'forward', { 'X-Cashu': token });
      mint.setFault('swap', undefined);
      t.equal(out.reason, 'PAYGRESS_MINT_ERROR', `${refusal.code}`);
      t.ok(mint.requests('checkstate') > checks, 'the mint is asked');
    }
    t.equal(pending(), 0, 'nothing left pending');

    const out = await send(stack, 'forward', { 'X-Cashu': token });
    t.equal(out.allowed, true, 'the same token pays once the mint takes it');
    if (out.allowed) paid += PRICE;
    t.equal(stored(), paid);

    // The payer's own refusal, for contrast: not spendable.
    const forged = await track(await mintToken(mint.url, PRICE));
    mint.setFault('swap', {
      kind: 'refuse',
      code: 10001,
      detail: 'Proof could not be verified',
    });
    const refused = await send(stack, 'forward', { 'X-Cashu': forged });
    mint.setFault('swap', undefined);
    t.equal(refused.reason, 'PAYGRESS_TOKEN_REJECTED');
  },
);

// Tokens whose swap may have run after Paygress stopped waiting.
const unsure: string[] = [];

t.test('mint hangs: unavailable, then pending until settled', async (t) => {
  const token = await track(await mintToken(mint.url, PRICE));
  mint.setFault('swap', { kind: 'hang' });
  const out = await send(stack, 'ext-authz', { 'x-cashu': token });
  t.equal(out.rpcError, 14, 'UNAVAILABLE: Envoy applies its failure mode');
  t.equal(out.reason, 'PAYGRESS_MINT_UNAVAILABLE');

  const retry = await send(stack, 'forward', { 'X-Cashu': token });
  t.equal(retry.reason, 'PAYGRESS_TOKEN_PENDING', 'never allowed twice');
  mint.setFault('swap', undefined);
  unsure.push(token);
  t.equal(pending(), PRICE, 'held as pending, not lost');
});

t.test('mint answers after the deadline: unavailable', async (t) => {
  const token = await track(await mintToken(mint.url, PRICE));
  // Longer than the 2000 ms mint timeout of the test stack.
  mint.setFault('swap', { kind: 'delay', ms: 3000 });
  const out = await send(stack, 'forward', { 'X-Cashu': token });
  mint.setFault('swap', undefined);
  unsure.push(token);

  t.equal(out.status, 503);
  t.equal(out.reason, 'PAYGRESS_MINT_UNAVAILABLE');
  t.equal(out.headers['retry-after'], '5');
});

t.test(
  'a hung mint trips a breaker: concurrent calls do not all wait',
  async (t) => {
    mint.setFault('swap', { kind: 'hang' });
    // Enough consecutive timeouts to trip any breaker.
    await Promise.all(
      [1, 2, 3].map(async () => {
        const token = await track(await mintToken(mint.url, PRICE));
        unsure.push(token);
        await send(stack, 'forward', { 'X-Cashu': token });
      }),
    );

    const tokens = await Promise.all(
      Array.from({ length: 6 }, async () =>
        track(await mintToken(mint.url, PRICE)),
      ),
    );
    const swaps = mint.requests('swap');
    const outs = await Promise.all(
      tokens.map((token) => send(stack, 'forward', { 'X-Cashu': token })),
    );
    const reached = mint.requests('swap') - swaps;
    mint.setFault('swap', undefined);

    for (const out of outs) t.equal(out.reason, 'PAYGRESS_MINT_UNAVAILABLE');
    // Counted, not timed: every swap that reaches a hung mint is a request
    // that waits the whole deadline.
    t.ok(
      reached < tokens.length,
      `an open breaker refuses without asking the mint (${reached} of ${tokens.length} reached it)`,
    );

    // Refused unsent, so unspent: once a probe finds the mint back, each
    // token is allowed exactly once.
    for (const token of tokens) {
      t.equal(spentAtMint(token), false, 'a refused token stays unspent');
      let retry = await send(stack, 'forward', { 'X-Cashu': token });
      for (let i = 0; i < 40 && !retry.allowed; i++) {
        await new Promise((r) => setTimeout(r, 250));
        retry = await send(stack, 'forward', { 'X-Cashu': token });
      }
      t.equal(retry.allowed, true, 'allowed once the mint answers again');
      if (retry.allowed) paid += PRICE;
    }
  },
);

t.test('settling after a restart recovers what the mint did', async (t) => {
  await until(() => unsure.every(spentAtMint));
  await stack.close();
  stack = await startStack({ price: PRICE, mint, dataDir });

  t.equal(pending(), 0, 'every unfinished redemption is settled');
  paid += PRICE * unsure.length;
  t.equal(stored(), paid, 'the sats the mint took are in the store');
  for (const token of unsure) {
    // The payer was refused while the swap ran: the retry gets what the
    // payment bought, exactly once.
    const out = await send(stack, 'forward', { 'X-Cashu': token });
    t.equal(out.allowed, true, 'paid while refused: the retry is allowed');
    const again = await send(stack, 'nginx', { 'X-Cashu': token });
    t.equal(again.reason, 'PAYGRESS_TOKEN_REPLAYED', 'and only once');
  }
  await recovers(t);
});

t.test('keyset rotated while running', async (t) => {
  const old = await track(await mintToken(mint.url, PRICE));
  mint.rotateKeyset('sat');
  const fresh = await track(await mintToken(mint.url, PRICE));

  const outNew = await send(stack, 'forward', { 'X-Cashu': fresh });
  t.equal(outNew.allowed, true, 'a token of the new keyset is allowed');
  const outOld = await send(stack, 'forward', { 'X-Cashu': old });
  t.equal(outOld.allowed, true, 'a token of an inactive keyset redeems');

  // Both refusals left the proofs unspent: once the keyset list may be
  // fetched again, the same tokens are allowed, each exactly once.
  await new Promise((r) => setTimeout(r, 5500));
  for (const [token, first] of [
    [fresh, outNew],
    [old, outOld],
  ] as const) {
    if (first.allowed) {
      paid += PRICE;
      continue;
    }
    t.equal(spentAtMint(token), false, 'a refused token stays unspent');
    const retry = await send(stack, 'forward', { 'X-Cashu': token });
    t.equal(retry.allowed, true, 'a retry is allowed');
    if (retry.allowed) paid += PRICE;
  }
  t.equal(stored(), paid);
  await recovers(t);
});

async function until(done: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done()) {
    if (Date.now() > deadline) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 25));
  }
}
