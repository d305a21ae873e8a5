/**
 * Swaps done the way Paygress did them before its outputs moved to
 * libsecp256k1: every step cashu-ts's own, with its default outputs and
 * its pure-JavaScript curve code. Tests hold the new path to these: the
 * write-ahead records they write must still complete and restore, and
 * must give the same proofs.
 */
import {
  Wallet,
  deserializeSwapPreview,
  serializeSwapPreview,
  type Proof,
  type SerializedBlindedSignature,
  type SerializedSwapPreview,
} from '@cashu/cashu-ts';
import type { PreparedSwap } from '../../src/core/ports.ts';

/** A cashu-ts wallet with its default output creator, keys loaded. */
export async function cashuTsWallet(mintUrl: string): Promise<Wallet> {
  const wallet = new Wallet(mintUrl, { unit: 'sat' });
  await wallet.loadMint();
  return wallet;
}

/**
 * The write-ahead record Paygress's gateway wrote for redeeming `proofs`
 * (DLEQ proofs stripped, outputs random or P2PK-locked to `lockTo`).
 */
export async function cashuTsRecord(
  wallet: Wallet,
  proofs: readonly Proof[],
  lockTo?: string,
): Promise<PreparedSwap> {
  const outputs = lockTo
    ? { type: 'p2pk' as const, options: { pubkey: lockTo } }
    : undefined;
  const checked = proofs.map(({ dleq: _stripped, ...proof }) => proof);
  const preview = await wallet.prepareSwapToReceive(
    checked,
    undefined,
    outputs,
  );
  return {
    serialized: JSON.stringify(serializeSwapPreview(preview)),
    outputAmount: preview.amount.toNumber(),
  };
}

/** Completes a record the way the gateway did: cashu-ts reads and swaps. */
export async function cashuTsComplete(
  wallet: Wallet,
  record: PreparedSwap,
): Promise<Proof[]> {
  const preview = previewOf(record);
  const { keep, send } = await wallet.completeSwap(preview);
  return [...keep, ...send];
}

/**
 * Restores a record the way the gateway did (NUT-09), each signature
 * turned into a proof by cashu-ts's `OutputData.toProof`.
 */
export async function cashuTsRestore(
  wallet: Wallet,
  record: PreparedSwap,
): Promise<Proof[]> {
  const preview = previewOf(record);
  const outputs = [
    ...(preview.keepOutputs ?? []),
    ...(preview.sendOutputs ?? []),
  ];
  const answer = await wallet.mint.restore({
    outputs: outputs.map((o) => o.blindedMessage),
  });
  const byB = new Map(
    answer.outputs.map((o, i) => [o.B_, answer.signatures[i]]),
  );
  return outputs.flatMap((output) => {
    const signature = byB.get(output.blindedMessage.B_) as
      SerializedBlindedSignature | undefined;
    if (signature === undefined) return [];
    return [output.toProof(signature, wallet.getKeyset(signature.id))];
  });
}

/** A record read back the way the gateway read it: by cashu-ts. */
function previewOf(record: PreparedSwap) {
  return deserializeSwapPreview(
    JSON.parse(record.serialized) as SerializedSwapPreview,
  );
}
