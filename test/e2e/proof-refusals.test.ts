/**
 * Proofs the mint would never accept are the payer's fault, answered as
 * such on every protocol: never a 5xx (nginx turns one into a 500 for the
 * client, Envoy's failure mode decides an RPC error) and never a reason
 * that tells the payer to retry what cannot succeed.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Amount,
  getEncodedToken,
  hashToCurve,
  signP2PKProofs,
  type Proof,
} from '@cashu/cashu-ts';
import * as ecc from 'tiny-secp256k1';
import { mintProofs, testWallet } from '../support/wallet.ts';
import { PROTOCOLS, send, startStack } from '../support/stack.ts';
import { startDevMint } from '../../src/devmint/index.ts';
import { SqliteWalletStore } from '../../src/store/sqlite-wallet-store.ts';

t.test(
  'a proof claiming an amount its keyset does not sign is malformed, and the mint is not asked',
  async (t) => {
    const s = await startStack();
    t.teardown(() => s.close());
    const swaps = s.mint.requests('swap');
    // Each covers the price; 100 and 300 are no power of two, 2^40 is past
    // the keyset's largest amount.
    const claims = [100, 300, 2 ** 40];
    for (const protocol of PROTOCOLS) {
      const [minted] = await mintProofs(s.mint.url, 64);
      const { dleq: _withoutDleq, ...proof } = minted!;
      for (const amount of claims) {
        const token = getEncodedToken({
          mint: s.mint.url,
          unit: 'sat',
          proofs: [{ ...proof, amount: BigInt(amount) } as never],
        });
        const out = await send(s, protocol, { 'X-Cashu': token });
        t.equal(
          out.reason,
          'PAYGRESS_TOKEN_MALFORMED',
          `${protocol}, claimed ${amount}`,
        );
        t.equal(
          out.rpcError,
          undefined,
          `${protocol}: a decision, no RPC error`,
        );
        t.ok(
          out.status === 402 || out.status === 401,
          `${protocol}: ${out.status}`,
        );
      }
    }
    t.equal(s.mint.requests('swap'), swaps, 'the mint was not asked to swap');
    const honest = await mintProofs(s.mint.url, 128);
    const paid = await send(s, 'forward', {
      'X-Cashu': getEncodedToken({
        mint: s.mint.url,
        unit: 'sat',
        proofs: honest,
      }),
    });
    t.equal(paid.allowed, true, 'a proof of a signed amount still pays');
  },
);

t.test(
  'a locked proof sent without its witness is rejected, not pending',
  async (t) => {
    const s = await startStack();
    t.teardown(() => s.close());
    const key = randomBytes(32);
    const pubkey = Buffer.from(ecc.pointFromScalar(key, true)!).toString('hex');
    const wallet = await testWallet(s.mint.url);
    const funds = await mintProofs(s.mint.url, 512, { wallet });
    const { send: locked } = await wallet.ops
      .send(128, funds)
      .asP2PK({ pubkey })
      .run();

    const unsigned = getEncodedToken({
      mint: s.mint.url,
      unit: 'sat',
      proofs: locked,
    });
    const out = await send(s, 'forward', { 'X-Cashu': unsigned });
    t.equal(out.reason, 'PAYGRESS_TOKEN_REJECTED');
    t.match(out.body, /spending conditions/i, 'the mint says why');

    // The same proofs stayed the payer's, and pay once signed.
    const signed = getEncodedToken({
      mint: s.mint.url,
      unit: 'sat',
      proofs: signP2PKProofs(locked, key.toString('hex')),
    });
    const paid = await send(s, 'forward', { 'X-Cashu': signed });
    t.equal(paid.allowed, true, 'the signed proofs pay');
  },
);

t.test(
  'a swap the mint refused is not kept to be checked at the mint again',
  async (t) => {
    const mint = await startDevMint();
    const dataDir = mkdtempSync(join(tmpdir(), 'paygress-refused-'));
    t.teardown(async () => {
      await mint.close();
      rmSync(dataDir, { recursive: true, force: true });
    });
    const { keysets } = (await (
      await fetch(`${mint.url}/v1/keysets`)
    ).json()) as {
      keysets: { id: string; active: boolean }[];
    };
    const id = keysets.find((k) => k.active)!.id;
    // Well formed, from the allowed mint, never signed by it.
    const forged = () =>
      getEncodedToken({
        mint: mint.url,
        unit: 'sat',
        proofs: [
          {
            id,
            amount: Amount.from(128),
            secret: randomBytes(32).toString('hex'),
            C: hashToCurve(randomBytes(32)).toHex(true),
          },
        ] as unknown as Proof[],
      });

    const s = await startStack({ mint, dataDir });
    const swaps = mint.requests('swap');
    for (const protocol of PROTOCOLS) {
      const out = await send(s, protocol, { 'X-Cashu': forged() });
      t.equal(out.reason, 'PAYGRESS_TOKEN_REJECTED', protocol);
    }
    t.equal(mint.requests('swap'), swaps + PROTOCOLS.length, 'each was sent');
    await s.close();

    const store = new SqliteWalletStore({ dataDir });
    t.same(store.released([]), [], 'none kept aside as released');
    t.same(store.unfinished(), [], 'none left pending');
    store.close();

    // A start settles what is unfinished and checks the swaps released in
    // the last ten minutes: none of these is asked about.
    const checks = mint.requests('checkstate');
    const again = await startStack({ mint, dataDir });
    t.teardown(() => again.close());
    t.equal(mint.requests('checkstate'), checks, 'no state check at start');

    const paid = await send(again, 'forward', {
      'X-Cashu': getEncodedToken({
        mint: mint.url,
        unit: 'sat',
        proofs: await mintProofs(mint.url, 128),
      }),
    });
    t.equal(paid.allowed, true, 'a real token still pays');
  },
);
