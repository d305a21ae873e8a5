/**
 * Stores full of real proofs, for the tests of `paygress wallet export`
 * on more proofs than a mint answers about in one request: real 1 sat
 * proofs of a dev mint, recorded as Paygress records its swaps' outputs.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { Proof } from '@cashu/cashu-ts';
import { computeY } from '../../src/core/token.ts';
import type { SqliteWalletStore } from '../../src/store/sqlite-wallet-store.ts';
import { testWallet } from './wallet.ts';

/** `count` proofs of 1 sat from the mint, 500 per mint request. */
export async function oneSatProofs(
  mintUrl: string,
  count: number,
): Promise<Proof[]> {
  const wallet = await testWallet(mintUrl);
  const proofs: Proof[] = [];
  for (let left = count; left > 0; left -= 500) {
    const n = Math.min(500, left);
    const quote = await wallet.createMintQuoteBolt11(n);
    proofs.push(
      ...(await wallet.mintProofsBolt11(n, quote, undefined, {
        type: 'random',
        denominations: Array<number>(n).fill(1),
      })),
    );
  }
  return proofs;
}

/**
 * Records `proofs` in `store` as the outputs of completed, delivered
 * redemptions of `perRedemption` proofs each.
 */
export function recordProofs(
  store: SqliteWalletStore,
  mintUrl: string,
  proofs: readonly Proof[],
  perRedemption: number,
): void {
  for (let i = 0; i < proofs.length; i += perRedemption) {
    const outputs = proofs.slice(i, i + perRedemption).map((p) => ({
      id: p.id,
      amount: p.amount.toNumber(),
      secret: p.secret,
      C: p.C,
    }));
    const id = randomUUID();
    store.begin({
      id,
      mint: mintUrl,
      unit: 'sat',
      amount: outputs.length,
      ys: [computeY(randomBytes(32).toString('hex'))],
      swap: { serialized: '{}', outputAmount: outputs.length },
      createdAt: Date.now(),
    });
    store.complete(id, outputs, true);
    store.delivered(id);
  }
}
