// Fault injection, PENDING inputs during a slow swap, and stop/start on
// the same port.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { blindMessage, hashToCurve } from '@cashu/cashu-ts';
import type { Proof } from '@cashu/cashu-ts';
import { startDevMint } from '../../src/devmint/index.ts';
import type { DevMint } from '../../src/devmint/index.ts';
import { mintProofs } from '../support/wallet.ts';

async function swapBody(mint: DevMint, amount = 8) {
  const proofs = await mintProofs(mint.url, amount);
  const { keysets } = (await (
    await fetch(`${mint.url}/v1/keys`)
  ).json()) as any;
  const outputs = proofs.map((proof: Proof) => ({
    id: keysets[0].id,
    amount: proof.amount.toNumber(),
    B_: blindMessage(
      new TextEncoder().encode(randomBytes(32).toString('hex')),
    ).B_.toHex(true),
  }));
  const inputs = proofs.map((proof) => ({
    id: proof.id,
    amount: proof.amount.toNumber(),
    secret: proof.secret,
    C: proof.C,
  }));
  const ys = proofs.map((p) =>
    hashToCurve(new TextEncoder().encode(p.secret)).toHex(true),
  );
  return { body: { inputs, outputs }, ys };
}

function swap(mint: DevMint, body: unknown, signal?: AbortSignal) {
  return fetch(`${mint.url}/v1/swap`, {
    method: 'POST',
    body: JSON.stringify(body),
    ...(signal ? { signal } : {}),
  });
}

async function states(mint: DevMint, Ys: string[]): Promise<string[]> {
  const res = await fetch(`${mint.url}/v1/checkstate`, {
    method: 'POST',
    body: JSON.stringify({ Ys }),
  });
  const body = (await res.json()) as any;
  return body.states.map((s: { state: string }) => s.state);
}

t.test('inputs are PENDING during a delayed swap, SPENT after', async (t) => {
  const mint = await startDevMint();
  t.teardown(() => mint.close());
  const { body, ys } = await swapBody(mint);
  mint.setFault('swap', { kind: 'delay', ms: 1000 });

  const slow = swap(mint, body);
  await new Promise((resolve) => setTimeout(resolve, 100));
  t.same(await states(mint, ys), ['PENDING']);
  const rival = await swap(mint, body);
  t.equal(rival.status, 400);
  t.equal(((await rival.json()) as any).code, 11002);

  t.equal((await slow).status, 200);
  t.same(await states(mint, ys), ['SPENT']);
  t.ok(mint.isSpent(ys[0]!));
});

t.test('status and garbage faults, on one route and on all', async (t) => {
  const mint = await startDevMint();
  t.teardown(() => mint.close());

  mint.setFault('keysets', { kind: 'status', status: 500 });
  t.equal((await fetch(`${mint.url}/v1/keysets`)).status, 500);
  t.equal(
    (await fetch(`${mint.url}/v1/keys`)).status,
    200,
    'other routes fine',
  );
  mint.setFault('keysets', undefined);
  t.equal((await fetch(`${mint.url}/v1/keysets`)).status, 200);

  mint.setFault('*', { kind: 'garbage' });
  const res = await fetch(`${mint.url}/v1/info`);
  t.equal(res.status, 200);
  await t.rejects(res.json(), 'body is not JSON');
  mint.setFault('*', undefined);
  t.equal(mint.requests('keysets'), 2);
  t.equal(mint.requests('info'), 1);
});

t.test('a status fault on swap leaves the inputs unspent', async (t) => {
  const mint = await startDevMint();
  t.teardown(() => mint.close());
  const { body, ys } = await swapBody(mint);
  mint.setFault('swap', { kind: 'status', status: 503 });
  t.equal((await swap(mint, body)).status, 503);
  t.same(await states(mint, ys), ['UNSPENT']);
});

t.test('a refuse fault answers as a mint refuses, nothing done', async (t) => {
  const mint = await startDevMint();
  t.teardown(() => mint.close());
  const { body, ys } = await swapBody(mint);
  mint.setFault('swap', {
    kind: 'refuse',
    code: 11005,
    detail: 'Transaction is not balanced',
  });
  const res = await swap(mint, body);
  t.equal(res.status, 400);
  t.same(await res.json(), {
    detail: 'Transaction is not balanced',
    code: 11005,
  });
  t.same(await states(mint, ys), ['UNSPENT']);
});

t.test('hang answers only once cleared', async (t) => {
  const mint = await startDevMint();
  t.teardown(() => mint.close());
  const { body, ys } = await swapBody(mint);
  mint.setFault('swap', { kind: 'hang' });

  let answered = false;
  const pending = swap(mint, body).then((res) => {
    answered = true;
    return res;
  });
  await new Promise((resolve) => setTimeout(resolve, 150));
  t.equal(answered, false);
  t.same(await states(mint, ys), ['PENDING']);

  mint.setFault('swap', undefined);
  t.equal((await pending).status, 200);
  t.same(await states(mint, ys), ['SPENT']);
});

t.test('hang ends with a dropped connection when the mint stops', async (t) => {
  const mint = await startDevMint();
  t.teardown(() => mint.close());
  const { body, ys } = await swapBody(mint);
  mint.setFault('swap', { kind: 'hang' });

  const pending = swap(mint, body);
  await new Promise((resolve) => setTimeout(resolve, 100));
  await mint.stop();
  await t.rejects(pending, 'connection dropped');
  await mint.start();
  mint.setFault('swap', undefined);
  t.same(await states(mint, ys), ['UNSPENT'], 'reservation released');
});

t.test('swap-then-drop spends the inputs but never answers', async (t) => {
  const mint = await startDevMint();
  t.teardown(() => mint.close());
  const { body, ys } = await swapBody(mint);
  mint.setFault('swap', { kind: 'swap-then-drop' });

  await t.rejects(swap(mint, body));
  t.same(await states(mint, ys), ['SPENT']);
  mint.setFault('swap', undefined);

  const restored = (await (
    await fetch(`${mint.url}/v1/restore`, {
      method: 'POST',
      body: JSON.stringify({ outputs: body.outputs }),
    })
  ).json()) as any;
  t.equal(
    restored.signatures.length,
    body.outputs.length,
    'outputs restorable',
  );
  t.same(restored.outputs, body.outputs);
});

t.test('stop refuses connections; start reopens the same port', async (t) => {
  const mint = await startDevMint();
  t.teardown(() => mint.close());
  const url = mint.url;
  const { body, ys } = await swapBody(mint);
  t.equal((await swap(mint, body)).status, 200);

  await mint.stop();
  await t.rejects(fetch(`${url}/v1/info`), 'connection refused');
  await mint.start();
  t.equal(mint.url, url);
  t.equal((await fetch(`${url}/v1/info`)).status, 200);
  t.same(await states(mint, ys), ['SPENT'], 'state survives a restart');
});
