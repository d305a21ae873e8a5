/**
 * Test helpers that fund Paygress tests with real ecash from a dev mint
 * (see `src/devmint`), through the real cashu-ts wallet. Every proof they
 * return is spendable at that mint; treat the values as bearer money and
 * never log them.
 */
import {
  Amount,
  OutputData,
  Wallet,
  blindMessage,
  getDecodedToken,
  getEncodedToken,
} from '@cashu/cashu-ts';
import type { Proof, Token } from '@cashu/cashu-ts';
import { computeY, type ParsedToken } from '../../src/core/token.ts';

/** Options shared by the minting helpers. */
export interface MintProofsOptions {
  /** Unit of the proofs; the mint must have a keyset for it. Default `sat`. */
  unit?: string;
  /** A loaded wallet to mint with; default: a fresh {@link testWallet}. */
  wallet?: Wallet;
}

/** Options of {@link mintToken}. */
export interface MintTokenOptions {
  /** Unit of the token. Default `sat`. */
  unit?: string;
  /** Token format: 4 gives `cashuB…` (default), 3 gives `cashuA…`. */
  version?: 3 | 4;
  /** Whether proofs carry their NUT-12 DLEQ proofs. Default true. */
  dleq?: boolean;
  /** Memo to embed in the token. Default none. */
  memo?: string;
}

/** A cashu-ts `Wallet` for `mintUrl`, with keys and info loaded. */
export async function testWallet(
  mintUrl: string,
  unit = 'sat',
): Promise<Wallet> {
  const wallet = new Wallet(mintUrl, { unit });
  await wallet.loadMint();
  return wallet;
}

/**
 * Fresh proofs worth exactly `amount` (in the unit), minted through a
 * bolt11 quote that the dev mint's fake Lightning backend pays at once.
 * Each proof is a power of two; together they sum to `amount`.
 */
export async function mintProofs(
  mintUrl: string,
  amount: number,
  opts: MintProofsOptions = {},
): Promise<Proof[]> {
  if (!Number.isSafeInteger(amount) || amount < 1) {
    throw new TypeError('`amount` must be a positive integer (units)');
  }

  const wallet = opts.wallet ?? (await testWallet(mintUrl, opts.unit ?? 'sat'));
  const quote = await wallet.createMintQuoteBolt11(amount);
  return wallet.mintProofsBolt11(amount, quote);
}

/**
 * Fresh proofs of `amount` sat, and the token of them as Paygress's core
 * takes it once parsed (for tests that drive the Redeemer directly).
 */
export async function mintParsedToken(
  mintUrl: string,
  amount: number,
): Promise<{ proofs: Proof[]; parsed: ParsedToken }> {
  const proofs = await mintProofs(mintUrl, amount);
  const parsed: ParsedToken = {
    mint: mintUrl,
    unit: 'sat',
    proofs: proofs.map((p) => ({
      id: p.id,
      amount: p.amount.toNumber(),
      secret: p.secret,
      C: p.C,
    })),
    ys: proofs.map((p) => computeY(p.secret)),
    amount,
    fingerprint: 'test',
  };
  return { proofs, parsed };
}

/**
 * One proof worth `amount` (a power of two) whose secret is `secret`, any
 * string: NUT-00 leaves a secret's form to the wallet.
 */
export async function mintProofWithSecret(
  mintUrl: string,
  amount: number,
  secret: string,
): Promise<Proof> {
  const wallet = await testWallet(mintUrl);
  const blinded = blindMessage(new TextEncoder().encode(secret));
  const output = new OutputData(
    {
      amount: Amount.from(amount),
      id: wallet.getKeyset().id,
      B_: blinded.B_.toHex(true),
    },
    blinded.r,
    blinded.secret,
  );
  const quote = await wallet.createMintQuoteBolt11(amount);
  const [proof] = await wallet.mintProofsBolt11(amount, quote, undefined, {
    type: 'custom',
    data: [output],
  });
  return proof!;
}

/**
 * An encoded token worth exactly `amount` gross (fees, if the mint charges
 * any, come off when it is redeemed). `cashuB…` by default, `cashuA…` for
 * `version: 3`.
 */
export async function mintToken(
  mintUrl: string,
  amount: number,
  opts: MintTokenOptions = {},
): Promise<string> {
  const unit = opts.unit ?? 'sat';
  const proofs = await mintProofs(mintUrl, amount, { unit });
  const dleq = opts.dleq ?? true;
  const memo = opts.memo === undefined ? {} : { memo: opts.memo };

  if (opts.version === 3)
    return encodeV3(mintUrl, unit, proofs, dleq, opts.memo);
  return getEncodedToken(
    { mint: mintUrl, unit, proofs, ...memo },
    { removeDleq: !dleq },
  );
}

// cashu-ts 4 only writes V4 tokens; V3 (NUT-00, deprecated) is JSON in
// base64url, simple enough to build here for tests of older clients.
function encodeV3(
  mint: string,
  unit: string,
  proofs: Proof[],
  dleq: boolean,
  memo: string | undefined,
): string {
  const wireProofs = proofs.map((proof) => ({
    id: proof.id,
    amount: proof.amount.toNumber(),
    secret: proof.secret,
    C: proof.C,
    ...(dleq && proof.dleq ? { dleq: wireDleq(proof.dleq) } : {}),
  }));
  const token = {
    token: [{ mint, proofs: wireProofs }],
    unit,
    ...(memo === undefined ? {} : { memo }),
  };

  return `cashuA${Buffer.from(JSON.stringify(token)).toString('base64url')}`;
}

function wireDleq(dleq: NonNullable<Proof['dleq']>) {
  return {
    e: dleq.e,
    s: dleq.s,
    ...(dleq.r === undefined ? {} : { r: dleq.r }),
  };
}

/**
 * A token decoded against its mint's keysets (a V4 token names keysets
 * by short ids, which only the mint's list resolves).
 */
export async function decodeToken(
  mintUrl: string,
  token: string,
): Promise<Token> {
  const { keysets } = (await (await fetch(`${mintUrl}/v1/keysets`)).json()) as {
    keysets: { id: string }[];
  };
  return getDecodedToken(
    token,
    keysets.map((k) => k.id),
  );
}

/**
 * `token` with every proof's amount rewritten by `amount`: the same
 * secrets, so the same payment to the mint and to Paygress's records,
 * claiming another value.
 */
export async function relabelled(
  mintUrl: string,
  token: string,
  amount: (was: number) => number,
): Promise<string> {
  const decoded = await decodeToken(mintUrl, token);
  return getEncodedToken({
    ...decoded,
    proofs: decoded.proofs.map((p) => ({
      ...p,
      amount: Amount.from(amount(p.amount.toNumber())),
    })),
  });
}
