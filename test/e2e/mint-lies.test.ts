/**
 * A mint whose answer does not verify (a forged DLEQ proof, or a blind
 * signature C_ that is not the one it proved) is refused, and nothing of
 * that answer is stored as ours: the redemption stays pending until the
 * mint answers a restore honestly, and then exactly what was paid is
 * recovered, as proofs the mint accepts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { Test } from 'tap';
import { Wallet } from '@cashu/cashu-ts';
import { encodeToken } from '../../src/core/token.ts';
import { startDevMint } from '../../src/devmint/index.ts';
import type { ForgedPart } from '../../src/devmint/faults.ts';
import { mintToken } from '../support/wallet.ts';
import { send, startStack, type Stack } from '../support/stack.ts';

const PRICE = 100;
const mint = await startDevMint();
const dataDir = mkdtempSync(join(tmpdir(), 'paygress-lies-'));
let stack: Stack = await startStack({ price: PRICE, mint, dataDir });
t.teardown(async () => {
  await stack.close();
  await mint.close();
  rmSync(dataDir, { recursive: true, force: true });
});

const sum = (field: 'available' | 'pending') =>
  stack.app.store.balances().reduce((n, b) => n + b[field], 0);
const proofCount = () => stack.app.store.unspent(mint.url, 'sat').length;

const LIES = {
  dleq: 'a forged DLEQ proof',
  C_: 'a wrong C_',
  // A mint that announces NUT-12 must prove each signature; one that
  // leaves the proof out could otherwise hand over any point as money.
  'C_ without dleq': 'a wrong C_ and no DLEQ proof',
} as const;

for (const [part, what] of Object.entries(LIES) as [ForgedPart, string][]) {
  t.test(`a mint answer with ${what} is refused`, async (t) => {
    const token = await mintToken(mint.url, PRICE);
    const before = { available: sum('available'), proofs: proofCount() };

    mint.setFault('swap', { kind: 'forge', part });
    mint.setFault('restore', { kind: 'forge', part });
    const out = await send(stack, 'forward', { 'X-Cashu': token });
    t.equal(out.allowed, false);
    t.equal(out.reason, 'PAYGRESS_MINT_ERROR');
    t.equal(out.status, 503);
    t.equal(sum('available'), before.available, 'no proof stored as ours');
    t.equal(proofCount(), before.proofs, 'no proof stored as ours');
    t.equal(sum('pending'), PRICE, 'held as pending: the mint took it');

    const retry = await send(stack, 'nginx', { 'X-Cashu': token });
    t.equal(retry.reason, 'PAYGRESS_TOKEN_PENDING', 'never allowed meanwhile');

    // Once the mint answers honestly, settling (here at a restart)
    // recovers what it signed.
    mint.setFault('swap', undefined);
    mint.setFault('restore', undefined);
    await stack.close();
    stack = await startStack({ price: PRICE, mint, dataDir });
    t.equal(sum('pending'), 0, 'settled');
    t.equal(sum('available'), before.available + PRICE, 'recovered');
    await spendable(t);
  });
}

t.test('a lie in the swap answer alone is recovered by restore', async (t) => {
  const token = await mintToken(mint.url, PRICE);
  const before = sum('available');
  mint.setFault('swap', { kind: 'forge', part: 'dleq' });
  const out = await send(stack, 'forward', { 'X-Cashu': token });
  mint.setFault('swap', undefined);

  t.equal(out.allowed, true, 'the payment happened, so the request is');
  t.equal(sum('available'), before + PRICE);
  t.equal(sum('pending'), 0);
  await spendable(t);
});

t.test('a mint without NUT-12 is taken at its word', async (t) => {
  const plain = await startDevMint({ dleq: false });
  const dir = mkdtempSync(join(tmpdir(), 'paygress-no-dleq-'));
  const s = await startStack({ price: PRICE, mint: plain, dataDir: dir });
  t.teardown(async () => {
    await s.close();
    await plain.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const out = await send(s, 'forward', {
    'X-Cashu': await mintToken(plain.url, PRICE),
  });
  t.equal(out.allowed, true, 'signatures without DLEQ proofs are accepted');
  const proofs = s.app.store.unspent(plain.url, 'sat');
  t.equal(
    proofs.reduce((n, p) => n + p.amount, 0),
    PRICE,
  );
  t.ok(
    proofs.every((p) => p.dleq === undefined),
    'none came with one',
  );
});

/**
 * The mint accepts every proof stored since the last call: another wallet
 * receives them (so the store still lists them; the checks above count
 * only differences).
 */
let checked = new Set<string>();
async function spendable(t: Test): Promise<void> {
  const proofs = stack.app.store
    .unspent(mint.url, 'sat')
    .filter((p) => !checked.has(p.secret));
  checked = new Set([...checked, ...proofs.map((p) => p.secret)]);
  const wallet = new Wallet(mint.url, { unit: 'sat' });
  await wallet.loadMint();
  const received = await wallet.receive(encodeToken(mint.url, 'sat', proofs));
  t.equal(
    received.reduce((n, p) => n + p.amount.toNumber(), 0),
    proofs.reduce((n, p) => n + p.amount, 0),
    'the stored proofs are good money',
  );
}
