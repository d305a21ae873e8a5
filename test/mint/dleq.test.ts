/**
 * Paygress's variable-time NUT-12 check (libsecp256k1) gives the same
 * verdict as cashu-ts's constant-time one: on the NUT-12 vector, on real
 * proofs from the dev mint, on each of them with one field tampered, and
 * on other spellings of the same valid proof.
 */
import { readFileSync } from 'node:fs';
import t from 'tap';
import {
  Amount,
  pointFromHex,
  verifyDleqIfPresent,
  type Proof,
} from '@cashu/cashu-ts';
import { startDevMint } from '../../src/devmint/index.ts';
import { verifyProofDleq, type DleqProof } from '../../src/mint/dleq.ts';
import { mintProofs, testWallet } from '../support/wallet.ts';

const nut12 = JSON.parse(
  readFileSync(new URL('../fixtures/nuts/nut12.json', import.meta.url), 'utf8'),
);

t.test('the NUT-12 proof vector verifies', async (t) => {
  const { proof, A } = nut12.proof;
  t.ok(verifyProofDleq(proof, A));
  // The vector's key is G itself (a = 1); 2·G is another key.
  const twoG =
    '02c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5';
  t.notOk(verifyProofDleq(proof, twoG), 'not under another key');
});

t.test('agrees with cashu-ts on real and tampered proofs', async (t) => {
  const mint = await startDevMint();
  t.teardown(() => mint.close());
  const wallet = await testWallet(mint.url, 'sat');
  const proofs = await mintProofs(mint.url, 1023, { wallet });
  t.equal(proofs.length, 10, 'one proof per power of two');

  const keyOf = (p: Proof) =>
    wallet.getKeyset(p.id).keys[p.amount.toNumber()] as string;
  const cashuTs = (p: DleqProof & { amount: Amount; id: string }) =>
    verifyDleqIfPresent({ ...p } as unknown as Proof, wallet.getKeyset(p.id));

  for (const proof of proofs) {
    const dleq = proof.dleq!;
    const wire = { ...proof, dleq: { e: dleq.e, s: dleq.s, r: dleq.r! } };
    t.ok(verifyProofDleq(wire, keyOf(proof)), `${proof.amount} verifies`);
    t.ok(cashuTs(wire), 'and cashu-ts agrees');

    const other = proofs.find((p) => p !== proof)!;
    const tampered: [string, DleqProof][] = [
      ['e', { ...wire, dleq: { ...wire.dleq, e: flip(dleq.e) } }],
      ['s', { ...wire, dleq: { ...wire.dleq, s: flip(dleq.s) } }],
      ['r', { ...wire, dleq: { ...wire.dleq, r: flip(dleq.r!) } }],
      ['C', { ...wire, C: other.C }],
      ['secret', { ...wire, secret: other.secret }],
      ['no r', { ...wire, dleq: { e: dleq.e, s: dleq.s } }],
      ['s = 0', { ...wire, dleq: { ...wire.dleq, s: '0'.repeat(64) } }],
      ['s = n', { ...wire, dleq: { ...wire.dleq, s: N_HEX } }],
      ['short e', { ...wire, dleq: { ...wire.dleq, e: dleq.e.slice(2) } }],
      ['C not a point', { ...wire, C: `05${proof.C.slice(2)}` }],
      ['e = 0', { ...wire, dleq: { ...wire.dleq, e: '0'.repeat(64) } }],
      ['e = n', { ...wire, dleq: { ...wire.dleq, e: N_HEX } }],
      ['r = 0', { ...wire, dleq: { ...wire.dleq, r: '0' } }],
      ['r = n', { ...wire, dleq: { ...wire.dleq, r: N_HEX } }],
      ['r empty', { ...wire, dleq: { ...wire.dleq, r: '' } }],
      ['r not hex', { ...wire, dleq: { ...wire.dleq, r: `x${dleq.r!}` } }],
      [
        's not hex',
        { ...wire, dleq: { ...wire.dleq, s: `${dleq.s.slice(1)}g` } },
      ],
      ['C hybrid', { ...wire, C: `06${uncompressed(proof.C).slice(2)}` }],
    ];
    for (const [what, bad] of tampered) {
      const ours = verifyProofDleq(bad, keyOf(proof));
      const theirs = cashuTs({ ...bad, amount: proof.amount, id: proof.id });
      t.notOk(ours, `${proof.amount} with ${what} changed is refused`);
      t.equal(ours, theirs, 'as cashu-ts judges it');
    }
    t.notOk(
      verifyProofDleq(wire, keyOf(other)),
      'the key of another amount does not verify it',
    );
    t.notOk(verifyProofDleq(wire, `05${keyOf(proof).slice(2)}`), 'no key');

    const spelled: [string, DleqProof][] = [
      ['C uncompressed', { ...wire, C: uncompressed(proof.C) }],
      [
        'upper-case hex',
        {
          ...wire,
          C: proof.C.toUpperCase(),
          dleq: {
            e: dleq.e.toUpperCase(),
            s: dleq.s.toUpperCase(),
            r: dleq.r!.toUpperCase(),
          },
        },
      ],
    ];
    for (const [what, same] of spelled) {
      const ours = verifyProofDleq(same, keyOf(proof));
      const theirs = cashuTs({ ...same, amount: proof.amount, id: proof.id });
      t.ok(ours, `${proof.amount} with ${what} verifies`);
      t.equal(ours, theirs, 'as cashu-ts judges it');
    }
    t.ok(
      verifyProofDleq(wire, uncompressed(keyOf(proof))),
      'under the key written uncompressed',
    );
  }

  // r read as a number: leading zeros may be dropped, as cashu-ts allows.
  const padded = proofs.find((p) => p.dleq!.r!.startsWith('0'));
  if (padded) {
    const r = padded.dleq!.r!.replace(/^0+/, '');
    t.ok(
      verifyProofDleq(
        { ...padded, dleq: { ...padded.dleq!, r } },
        keyOf(padded),
      ),
    );
  }
  // Or written in 33 bytes: the same number.
  const proof = proofs[0]!;
  const r33 = `00${proof.dleq!.r!}`;
  t.ok(
    verifyProofDleq(
      { ...proof, dleq: { ...proof.dleq!, r: r33 } },
      keyOf(proof),
    ),
    'r with a leading 00 byte',
  );
  t.notOk(
    verifyProofDleq(
      { ...proof, dleq: { ...proof.dleq!, r: `01${proof.dleq!.r!}` } },
      keyOf(proof),
    ),
    'but not a larger number',
  );
});

const N_HEX =
  'fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141';

/** The same point, uncompressed. */
function uncompressed(hex: string): string {
  return pointFromHex(hex).toHex(false);
}

/** The same hex with its last digit changed. */
function flip(hex: string): string {
  return hex.slice(0, -1) + (hex.endsWith('0') ? '1' : '0');
}
