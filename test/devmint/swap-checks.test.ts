// Every check of POST /v1/swap, refused with the NUT error code a real
// mint sends, over plain HTTP so nothing in a client can hide a refusal.
import t from 'tap';
import type { Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { blindMessage } from '@cashu/cashu-ts';
import type { Proof } from '@cashu/cashu-ts';
import { startDevMint } from '../../src/devmint/index.ts';
import type { DevMintOptions } from '../../src/devmint/index.ts';
import { mintProofs } from '../support/wallet.ts';

// Mint answers are untyped JSON; the assertions below check their shape.
async function getJson(url: string): Promise<any> {
  return (await fetch(url)).json();
}

interface Output {
  id: string;
  amount: number;
  B_: string;
}

const wire = (proof: Proof) => ({
  id: proof.id,
  amount: proof.amount.toNumber(),
  secret: proof.secret,
  C: proof.C,
});

function output(id: string, amount: number): Output {
  const secret = new TextEncoder().encode(randomBytes(32).toString('hex'));
  return { id, amount, B_: blindMessage(secret).B_.toHex(true) };
}

async function post(url: string, path: string, body: unknown) {
  const res = await fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as any };
}

async function activeId(url: string, unit = 'sat'): Promise<string> {
  const { keysets } = await getJson(`${url}/v1/keys`);
  return keysets.find((k: { unit: string }) => k.unit === unit).id;
}

async function setup(t: Test, options: DevMintOptions = {}) {
  const mint = await startDevMint(options);
  t.teardown(() => mint.close());
  return { mint, url: mint.url, id: await activeId(mint.url) };
}

t.test(
  'a balanced swap succeeds; the same inputs again are spent',
  async (t) => {
    const { url, id } = await setup(t);
    const [proof] = await mintProofs(url, 8);
    const inputs = [wire(proof!)];

    const ok = await post(url, '/v1/swap', {
      inputs,
      outputs: [output(id, 8)],
    });
    t.equal(ok.status, 200);
    t.equal(ok.body.signatures.length, 1);
    t.ok(ok.body.signatures[0].dleq.e, 'signature carries a DLEQ');

    const again = await post(url, '/v1/swap', {
      inputs,
      outputs: [output(id, 8)],
    });
    t.equal(again.status, 400);
    t.equal(again.body.code, 11001);
    t.type(again.body.detail, 'string');
  },
);

t.test('duplicate inputs', async (t) => {
  const { url, id } = await setup(t);
  const [proof] = await mintProofs(url, 8);
  const res = await post(url, '/v1/swap', {
    inputs: [wire(proof!), wire(proof!)],
    outputs: [output(id, 16)],
  });
  t.equal(res.body.code, 11007);
});

t.test('duplicate outputs', async (t) => {
  const { url, id } = await setup(t);
  const [proof] = await mintProofs(url, 8);
  const out = output(id, 4);
  const res = await post(url, '/v1/swap', {
    inputs: [wire(proof!)],
    outputs: [out, out],
  });
  t.equal(res.body.code, 11008);
});

t.test('outputs signed before', async (t) => {
  const { url, id } = await setup(t);
  const [a, b] = await mintProofs(url, 3);
  const out = output(id, a!.amount.toNumber());
  t.equal(
    (await post(url, '/v1/swap', { inputs: [wire(a!)], outputs: [out] }))
      .status,
    200,
  );

  const res = await post(url, '/v1/swap', {
    inputs: [wire(b!)],
    outputs: [{ ...out, amount: b!.amount.toNumber() }],
  });
  t.equal(res.body.code, 11003);
});

t.test('unbalanced', async (t) => {
  const { url, id } = await setup(t);
  const [proof] = await mintProofs(url, 8);
  const res = await post(url, '/v1/swap', {
    inputs: [wire(proof!)],
    outputs: [output(id, 8), output(id, 1)],
  });
  t.equal(res.body.code, 11005);
});

t.test('fee not paid', async (t) => {
  const { url, id } = await setup(t, { inputFeePpk: 1000 });
  const [proof] = await mintProofs(url, 8);
  const unpaid = await post(url, '/v1/swap', {
    inputs: [wire(proof!)],
    outputs: [output(id, 8)],
  });
  t.equal(unpaid.body.code, 11005);

  const paid = await post(url, '/v1/swap', {
    inputs: [wire(proof!)],
    outputs: [output(id, 4), output(id, 2), output(id, 1)],
  });
  t.equal(paid.status, 200, 'inputs - fee == outputs is accepted');
});

t.test('bad signature', async (t) => {
  const { url, id } = await setup(t);
  const [a, b] = await mintProofs(url, 3);
  const forged = { ...wire(b!), amount: a!.amount.toNumber(), C: a!.C };
  const res = await post(url, '/v1/swap', {
    inputs: [forged],
    outputs: [output(id, forged.amount)],
  });
  t.equal(res.body.code, 10001);
});

t.test('unknown keyset, for inputs and for outputs', async (t) => {
  const { url, id } = await setup(t);
  const [proof] = await mintProofs(url, 8);
  const unknown = `01${'ab'.repeat(32)}`;

  const input = await post(url, '/v1/swap', {
    inputs: [{ ...wire(proof!), id: unknown }],
    outputs: [output(id, 8)],
  });
  t.equal(input.body.code, 12001);
  const out = await post(url, '/v1/swap', {
    inputs: [wire(proof!)],
    outputs: [output(unknown, 8)],
  });
  t.equal(out.body.code, 12001);
  const keys = await fetch(`${url}/v1/keys/${unknown}`);
  t.equal(keys.status, 400);
  t.equal(((await keys.json()) as any).code, 12001);
});

t.test('inactive keyset: inputs accepted, outputs refused', async (t) => {
  const { mint, url, id: oldId } = await setup(t);
  const [a, b] = await mintProofs(url, 3);
  const newId = mint.rotateKeyset('sat');
  t.not(newId, oldId);
  t.equal(await activeId(url), newId);

  const keysets = (await getJson(`${url}/v1/keysets`)).keysets;
  t.same(
    keysets.map((k: { id: string; active: boolean }) => [k.id, k.active]),
    [
      [oldId, false],
      [newId, true],
    ],
  );
  const oldKeys = await getJson(`${url}/v1/keys/${oldId}`);
  t.equal(oldKeys.keysets[0].active, false, 'inactive keys still served');

  const refused = await post(url, '/v1/swap', {
    inputs: [wire(a!)],
    outputs: [output(oldId, a!.amount.toNumber())],
  });
  t.equal(refused.body.code, 12002);
  const ok = await post(url, '/v1/swap', {
    inputs: [wire(b!)],
    outputs: [output(newId, b!.amount.toNumber())],
  });
  t.equal(ok.status, 200);
});

t.test('wrong unit', async (t) => {
  const { url } = await setup(t, { units: ['sat', 'usd'] });
  const [proof] = await mintProofs(url, 8);
  const usd = await activeId(url, 'usd');
  const res = await post(url, '/v1/swap', {
    inputs: [wire(proof!)],
    outputs: [output(usd, 8)],
  });
  t.equal(res.body.code, 11010);
});

t.test(
  'amounts that are not a denomination, and malformed bodies',
  async (t) => {
    const { url, id } = await setup(t);
    const [proof] = await mintProofs(url, 8);
    const odd = await post(url, '/v1/swap', {
      inputs: [wire(proof!)],
      outputs: [output(id, 3), output(id, 5)],
    });
    t.equal(odd.status, 400);
    t.equal(odd.body.code, 11006);

    const garbage = await fetch(`${url}/v1/swap`, {
      method: 'POST',
      body: '{',
    });
    t.equal(garbage.status, 400);
    const empty = await post(url, '/v1/swap', { inputs: [], outputs: [] });
    t.equal(empty.status, 400);
    t.notOk(await fetch(`${url}/v1/nothing`).then((r) => r.ok));
  },
);

t.test('mint: quote issued once, outputs must match the quote', async (t) => {
  const { url, id } = await setup(t);
  const quote = (
    await post(url, '/v1/mint/quote/bolt11', { amount: 4, unit: 'sat' })
  ).body;
  t.match(quote.request, /^lnbcrt40n1/, 'invoice prefix carries 4 sat');
  const state = await getJson(`${url}/v1/mint/quote/bolt11/${quote.quote}`);
  t.equal(state.state, 'PAID');

  const short = await post(url, '/v1/mint/bolt11', {
    quote: quote.quote,
    outputs: [output(id, 2)],
  });
  t.equal(short.body.code, 11005);
  const ok = await post(url, '/v1/mint/bolt11', {
    quote: quote.quote,
    outputs: [output(id, 4)],
  });
  t.equal(ok.status, 200);
  const twice = await post(url, '/v1/mint/bolt11', {
    quote: quote.quote,
    outputs: [output(id, 4)],
  });
  t.equal(twice.body.code, 20002);
  const unit = await post(url, '/v1/mint/quote/bolt11', {
    amount: 4,
    unit: 'eur',
  });
  t.equal(unit.body.code, 11013);
});
