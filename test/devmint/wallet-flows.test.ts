// The real cashu-ts 4 Wallet, unchanged, against the dev mint: mint, send,
// receive, check state, restore, and the two-step swap.
import t from 'tap';
import { Wallet, getDecodedToken, hashToCurve } from '@cashu/cashu-ts';
import type { Proof } from '@cashu/cashu-ts';
import { startDevMint } from '../../src/devmint/index.ts';
import { mintProofs, mintToken, testWallet } from '../support/wallet.ts';

// Mint answers are untyped JSON; the assertions below check their shape.
async function getJson(url: string): Promise<any> {
  return (await fetch(url)).json();
}

const sum = (proofs: Proof[]) =>
  proofs.reduce((total, proof) => total + proof.amount.toNumber(), 0);
const yOf = (proof: Proof) =>
  hashToCurve(new TextEncoder().encode(proof.secret)).toHex(true);

t.test('info says development only and lists the NUTs', async (t) => {
  const mint = await startDevMint();
  t.teardown(() => mint.close());

  const info = await getJson(`${mint.url}/v1/info`);
  t.match(info.description, /development/i);
  t.equal(info.nuts['12'].supported, true);
  t.equal(info.nuts['4'].methods[0].method, 'bolt11');
  t.notOk(mint.url.endsWith('/'));
});

t.test('mint, send, receive and check state', async (t) => {
  const mint = await startDevMint();
  t.teardown(() => mint.close());
  const alice = await testWallet(mint.url);
  const bob = await testWallet(mint.url);

  const quote = await alice.createMintQuoteBolt11(64);
  t.equal(quote.state, 'PAID', 'fake lightning pays at once');
  const proofs = await alice.mintProofsBolt11(64, quote);
  t.equal(sum(proofs), 64);
  t.ok(
    proofs.every((proof) => proof.dleq),
    'every proof carries a DLEQ',
  );

  const { send, keep } = await alice.send(10, proofs);
  t.equal(sum(send), 10);
  t.equal(sum(keep), 54);
  const states = await alice.checkProofsStates(proofs);
  t.ok(
    states.every((state) => state.state === 'SPENT'),
    'swapped inputs spent',
  );
  t.ok(mint.isSpent(yOf(proofs[0]!)));

  const received = await bob.receive(send);
  t.equal(sum(received), 10);
  const sent = await bob.checkProofsStates(send);
  t.ok(sent.every((state) => state.state === 'SPENT'));
  const fresh = await bob.checkProofsStates(received);
  t.ok(fresh.every((state) => state.state === 'UNSPENT'));

  await t.rejects(bob.receive(send), 'a second receive is a double spend');
});

t.test('prepareSwapToReceive then completeSwap', async (t) => {
  const mint = await startDevMint();
  t.teardown(() => mint.close());
  const token = await mintToken(mint.url, 33);
  const wallet = await testWallet(mint.url);

  const prepared = await wallet.prepareSwapToReceive(token);
  t.equal(prepared.amount.toNumber(), 33);
  const { keep } = await wallet.completeSwap(prepared);
  t.equal(sum(keep), 33);
});

t.test('restore gives back what a seeded wallet minted', async (t) => {
  const mint = await startDevMint();
  t.teardown(() => mint.close());
  const seed = new Uint8Array(64).fill(3);

  const first = new Wallet(mint.url, { unit: 'sat', bip39seed: seed });
  await first.loadMint();
  const quote = await first.createMintQuoteBolt11(21);
  const minted = await first.mintProofsBolt11(21, quote);

  const second = new Wallet(mint.url, { unit: 'sat', bip39seed: seed });
  await second.loadMint();
  const { proofs } = await second.restore(0, 20);
  t.equal(sum(proofs), 21);
  t.same(
    proofs.map((proof) => proof.C).sort(),
    minted.map((proof) => proof.C).sort(),
  );
  t.ok(mint.requests('restore') >= 1);
});

t.test('restore answers only outputs it signed', async (t) => {
  const mint = await startDevMint();
  t.teardown(() => mint.close());
  const res = await fetch(`${mint.url}/v1/restore`, {
    method: 'POST',
    body: JSON.stringify({
      outputs: [
        {
          id: '01'.padEnd(66, '0'),
          amount: 1,
          B_: '02a9acc1e48c25eeeb9289b5031cc57da9fe72f3fe2861d264bdc074209b107ba2',
        },
      ],
    }),
  });
  t.same(await res.json(), { outputs: [], signatures: [] });
});

t.test(
  'fees: the receiver gets the token total minus input fees',
  async (t) => {
    const mint = await startDevMint({ inputFeePpk: 100 });
    t.teardown(() => mint.close());
    const keysets = await getJson(`${mint.url}/v1/keysets`);
    t.equal(keysets.keysets[0].input_fee_ppk, 100);

    const token = await mintToken(mint.url, 15);
    const wallet = await testWallet(mint.url);
    const proofs = getDecodedToken(token, [keysets.keysets[0].id]).proofs;
    const received = await wallet.receive(token);
    t.equal(sum(received), 15 - Math.ceil((proofs.length * 100) / 1000));
  },
);

t.test('test helpers', async (t) => {
  const mint = await startDevMint({ units: ['sat', 'usd'] });
  t.teardown(() => mint.close());

  const proofs = await mintProofs(mint.url, 77);
  t.equal(sum(proofs), 77);
  t.ok(proofs.every((p) => Number.isInteger(Math.log2(p.amount.toNumber()))));

  const v4 = await mintToken(mint.url, 5, { memo: 'thanks' });
  t.match(v4, /^cashuB/);
  const v3 = await mintToken(mint.url, 6, { version: 3, memo: 'old' });
  t.match(v3, /^cashuA/);
  const bare = await mintToken(mint.url, 7, { dleq: false });
  const usd = await mintToken(mint.url, 8, { unit: 'usd' });

  const ids = (await getJson(`${mint.url}/v1/keysets`)).keysets.map(
    (k: { id: string }) => k.id,
  );
  t.equal(getDecodedToken(v4, ids).memo, 'thanks');
  t.equal(getDecodedToken(v3, ids).memo, 'old');
  t.ok(getDecodedToken(v4, ids).proofs.every((p) => p.dleq));
  t.ok(getDecodedToken(bare, ids).proofs.every((p) => !p.dleq));

  const receiver = await testWallet(mint.url);
  t.equal(sum(await receiver.receive(v4)), 5);
  t.equal(sum(await receiver.receive(v3)), 6);
  t.equal(sum(await receiver.receive(bare)), 7);
  const usdWallet = await testWallet(mint.url, 'usd');
  t.equal(sum(await usdWallet.receive(usd)), 8);
});
