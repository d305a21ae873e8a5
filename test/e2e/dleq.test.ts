/**
 * NUT-12: a DLEQ proof that comes with a token is checked against the
 * mint's keys, so a proof the mint never signed is refused before any
 * swap; `tokens.requireDleq` refuses tokens that carry none.
 */
import t from 'tap';
import { getDecodedToken, getEncodedToken } from '@cashu/cashu-ts';
import { mintToken } from '../support/wallet.ts';
import { send, startStack } from '../support/stack.ts';

t.test(
  'a DLEQ proof that does not verify is refused before any swap',
  async (t) => {
    const s = await startStack();
    t.teardown(() => s.close());
    const keysets = (await (
      await fetch(`${s.mint.url}/v1/keysets`)
    ).json()) as {
      keysets: { id: string }[];
    };
    const good = getDecodedToken(
      await mintToken(s.mint.url, 128),
      keysets.keysets.map((k) => k.id),
    );
    const proof = good.proofs[0]!;
    t.ok(proof.dleq, 'the dev mint signs with DLEQ proofs');
    const flipped = proof.dleq!.s.endsWith('0') ? '1' : '0';
    const forged = getEncodedToken({
      ...good,
      proofs: [
        {
          ...proof,
          dleq: { ...proof.dleq!, s: proof.dleq!.s.slice(0, -1) + flipped },
        },
      ],
    });

    const swaps = s.mint.requests('swap');
    const out = await send(s, 'forward', { 'X-Cashu': forged });
    t.equal(out.reason, 'PAYGRESS_DLEQ_INVALID');
    t.equal(s.mint.requests('swap'), swaps, 'the mint was not asked to swap');

    const honest = await send(s, 'forward', {
      'X-Cashu': await mintToken(s.mint.url, 100),
    });
    t.equal(honest.allowed, true, 'a token with valid DLEQ proofs passes');
  },
);

t.test('requireDleq refuses tokens without DLEQ proofs', async (t) => {
  const s = await startStack({ env: { PAYGRESS_REQUIRE_DLEQ: 'true' } });
  t.teardown(() => s.close());
  const bare = await mintToken(s.mint.url, 100, { dleq: false });
  const out = await send(s, 'forward', { 'X-Cashu': bare });
  t.equal(out.reason, 'PAYGRESS_DLEQ_REQUIRED');

  const withDleq = await mintToken(s.mint.url, 100);
  t.equal((await send(s, 'forward', { 'X-Cashu': withDleq })).allowed, true);
});
