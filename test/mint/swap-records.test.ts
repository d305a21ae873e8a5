/**
 * Write-ahead records written before Paygress's outputs moved to
 * libsecp256k1 (cashu-ts's own outputs, some frozen in
 * test/fixtures/swap-records.json, some made now the same way) still
 * complete and restore through the gateway, into exactly the proofs
 * cashu-ts makes of them; and records the gateway writes now are ones
 * cashu-ts completes. Against the real dev mint.
 */
import { readFileSync } from 'node:fs';
import t from 'tap';
import {
  Wallet,
  getPubKeyFromPrivKey,
  type Proof,
  type SerializedSwapPreview,
} from '@cashu/cashu-ts';
import type { PreparedSwap, WireProof } from '../../src/core/ports.ts';
import { encodeToken } from '../../src/core/token.ts';
import { startDevMint, type DevMint } from '../../src/devmint/index.ts';
import { CashuMintGateway } from '../../src/mint/cashu-gateway.ts';
import {
  cashuTsComplete,
  cashuTsRecord,
  cashuTsRestore,
  cashuTsWallet,
} from '../support/cashu-ts-swaps.ts';
import { mintProofs } from '../support/wallet.ts';

const fixture = JSON.parse(
  readFileSync(
    new URL('../fixtures/swap-records.json', import.meta.url),
    'utf8',
  ),
) as {
  mintSeed: string;
  operatorKey: string;
  records: (PreparedSwap & { lockTo?: string })[];
};
const operatorPubkey = Buffer.from(
  getPubKeyFromPrivKey(Buffer.from(fixture.operatorKey, 'hex')),
).toString('hex');

const mints: DevMint[] = [];
t.teardown(() => Promise.all(mints.map((m) => m.close())));

/** A fresh dev mint: of the fixture's seed, or of a random one. */
async function freshMint(seeded = true): Promise<DevMint> {
  const seed = new Uint8Array(Buffer.from(fixture.mintSeed, 'hex'));
  const mint = await startDevMint(seeded ? { seed } : {});
  mints.push(mint);
  return mint;
}

function gatewayFor(mint: DevMint, lockTo?: string): CashuMintGateway {
  const gateway = new CashuMintGateway({
    mints: [mint.url],
    ...(lockTo ? { lockTo } : {}),
  });
  t.teardown(() => gateway.close());
  return gateway;
}

const wire = (proofs: Proof[]): WireProof[] =>
  proofs.map((p) => ({
    id: p.id,
    amount: p.amount.toNumber(),
    secret: p.secret,
    C: p.C,
    ...(p.dleq ? { dleq: p.dleq } : {}),
  }));

/** The mint takes the proofs: another wallet receives them. */
async function spendable(
  mint: DevMint,
  proofs: WireProof[],
  lockedTo?: string,
): Promise<number> {
  const wallet = new Wallet(mint.url, { unit: 'sat' });
  await wallet.loadMint();
  const token = encodeToken(mint.url, 'sat', proofs);
  const privkey =
    lockedTo === undefined ? {} : { privkey: fixture.operatorKey };
  const received = await wallet.receive(token, privkey);
  return received.reduce((n, p) => n + p.amount.toNumber(), 0);
}

t.test('frozen cashu-ts records complete and restore', async (t) => {
  t.equal(fixture.records.length, 2);
  for (const record of fixture.records) {
    const what = record.lockTo ? 'P2PK-locked' : 'bearer';
    const preview = JSON.parse(record.serialized) as SerializedSwapPreview;
    t.equal(preview.keepOutputs?.length, 3, `${what}: three outputs`);

    // The same record on two fresh mints of one seed: cashu-ts completes
    // it on one, the gateway on the other. Signing and DLEQ nonces are
    // deterministic, so the proofs must be identical.
    const theirMint = await freshMint();
    const theirs = wire(
      await cashuTsComplete(await cashuTsWallet(theirMint.url), record),
    );
    const ourMint = await freshMint();
    const gateway = gatewayFor(ourMint, record.lockTo);
    const ours = await gateway.completeSwap(ourMint.url, 'sat', record);
    t.same(ours, theirs, `${what}: the proofs cashu-ts makes`);
    t.equal(
      ours.reduce((n, p) => n + p.amount, 0),
      record.outputAmount,
    );
    t.ok(
      ours.every((p) => p.dleq?.r),
      'each with its DLEQ proof and r',
    );

    // The answer lost: restoring gives them again, as cashu-ts restores.
    const restored = await gateway.restoreSwap(ourMint.url, 'sat', record);
    t.same(restored, ours, `${what}: restored`);
    const cashuTs = await cashuTsRestore(
      await cashuTsWallet(ourMint.url),
      record,
    );
    t.same(wire(cashuTs), ours, `${what}: as cashu-ts restores them`);

    if (record.lockTo) {
      t.equal(record.lockTo, operatorPubkey);
      for (const proof of ours) {
        const [kind, body] = JSON.parse(proof.secret);
        t.equal(kind, 'P2PK');
        t.equal(body.data, operatorPubkey);
      }
    }
    t.equal(
      await spendable(ourMint, ours, record.lockTo),
      record.outputAmount,
      `${what}: the mint takes them`,
    );
  }
});

t.test('records made the old way now, plain and locked', async (t) => {
  const mint = await freshMint(false);
  const wallet = await cashuTsWallet(mint.url);
  for (const lockTo of [undefined, operatorPubkey]) {
    const what = lockTo ? 'P2PK-locked' : 'bearer';
    const gateway = gatewayFor(mint, lockTo);

    // Completed through the gateway.
    const first = await cashuTsRecord(
      wallet,
      await mintProofs(mint.url, 77, { wallet }),
      lockTo,
    );
    const ours = await gateway.completeSwap(mint.url, 'sat', first);
    t.equal(
      ours.reduce((n, p) => n + p.amount, 0),
      77,
      `${what}: completed`,
    );
    t.same(
      wire(await cashuTsRestore(wallet, first)),
      ours,
      `${what}: the proofs cashu-ts makes of the same signatures`,
    );

    // The swap ran (here: by cashu-ts) but its answer never reached us.
    const second = await cashuTsRecord(
      wallet,
      await mintProofs(mint.url, 30, { wallet }),
      lockTo,
    );
    const lost = wire(await cashuTsComplete(wallet, second));
    const restored = await gateway.restoreSwap(mint.url, 'sat', second);
    t.same(restored, lost, `${what}: restored into the same proofs`);
    t.equal(await spendable(mint, restored, lockTo), 30);
  }
});

t.test('records the gateway writes now are cashu-ts records', async (t) => {
  const mint = await freshMint(false);
  const wallet = await cashuTsWallet(mint.url);
  for (const lockTo of [undefined, operatorPubkey]) {
    const what = lockTo ? 'P2PK-locked' : 'bearer';
    const gateway = gatewayFor(mint, lockTo);
    const proofs = wire(await mintProofs(mint.url, 100, { wallet }));
    const record = await gateway.prepareSwap(mint.url, 'sat', proofs);

    const preview = JSON.parse(record.serialized) as SerializedSwapPreview;
    t.same(
      Object.keys(preview),
      ['amount', 'fees', 'keysetId', 'inputs', 'keepOutputs'],
      `${what}: the record's fields`,
    );
    for (const output of preview.keepOutputs!) {
      t.same(Object.keys(output), [
        'blindedMessage',
        'blindingFactor',
        'secret',
      ]);
      const secret = Buffer.from(output.secret, 'hex').toString('utf8');
      if (lockTo) {
        t.match(
          secret,
          new RegExp(
            `^\\["P2PK",\\{"nonce":"[0-9a-f]{64}","data":"${lockTo}","tags":\\[\\]\\}\\]$`,
          ),
        );
      } else {
        t.match(secret, /^[0-9a-f]{64}$/);
      }
    }

    // cashu-ts completes it; the gateway restores the same proofs.
    const theirs = wire(await cashuTsComplete(wallet, record));
    const ours = await gateway.restoreSwap(mint.url, 'sat', record);
    t.same(ours, theirs, `${what}: cashu-ts completes it`);
    t.equal(await spendable(mint, ours, lockTo), 100);
  }
});
