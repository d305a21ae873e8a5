/**
 * Reading a Cashu token out of a request: where it rides, how long it may
 * be, and what it says before anything is sent to a mint. Every step fails
 * with its own reason code; nothing here performs I/O.
 */
import { createHash } from 'node:crypto';
import {
  Amount,
  getDecodedToken,
  getEncodedToken,
  getTokenMetadata,
  type Proof,
} from '@cashu/cashu-ts';
import { LRUCache } from 'lru-cache';
import { secretToY } from './curve.ts';
import {
  KeysetUnknownError,
  TokenMalformedError,
  TokenReplayedError,
  TokenTooLargeError,
} from './errors.ts';
import type { WireProof } from './ports.ts';

/** What the token claims before its keysets are resolved. */
export interface TokenHeader {
  /** The token as sent, stripped of prefix and whitespace. */
  readonly encoded: string;
  /** Mint URL exactly as the token states it (attacker input). */
  readonly mint: string;
  readonly unit: string;
  /** Gross value, before fees. */
  readonly amount: number;
  readonly proofCount: number;
}

/** A decoded token whose keyset ids are full ids of its mint. */
export interface ParsedToken {
  readonly mint: string;
  readonly unit: string;
  readonly proofs: readonly WireProof[];
  /** `Y = hash_to_curve(secret)` of each proof, hex, in proof order. */
  readonly ys: readonly string[];
  /** Gross value, before fees. */
  readonly amount: number;
  /** Short non-secret fingerprint of the proofs, safe to log. */
  readonly fingerprint: string;
}

const BEARER = /^bearer[ \t]+/i;

/**
 * A header value without the spaces and tabs around it (HTTP's optional
 * whitespace), and nothing else: String.trim also takes a no-break space
 * (0xA0, read from a header as latin1) or a form feed, which the proxies'
 * own filters for Paygress's credentials (nginx's `\s`) do not, so a value
 * Paygress read as a credential could pass them to the application.
 */
export function trimOws(value: string): string {
  return value.replace(/^[ \t]+|[ \t]+$/g, '');
}

/**
 * The raw token from `X-Cashu` (NUT-24) or `Authorization: Bearer`, or
 * undefined when neither carries something that looks like a Cashu token.
 * A bearer credential that is not a Cashu token (a grant) is left alone.
 */
export function findToken(
  headers: Readonly<Record<string, string>>,
): string | undefined {
  const cashu = trimOws(headers['x-cashu'] ?? '');
  if (cashu) return cashu;

  const auth = trimOws(headers['authorization'] ?? '');
  if (!auth || !BEARER.test(auth)) return undefined;
  const credential = auth.replace(BEARER, '');
  return isCashuToken(credential) ? credential : undefined;
}

/** True for `cashuA…`, `cashuB…` and their `cashu:` URI forms. */
export function isCashuToken(value: string): boolean {
  return /^(cashu:)?cashu[AB]/i.test(trimOws(value));
}

/**
 * Checks size and shape and reads the token's header fields. Refuses a
 * token over `maxLength` characters before decoding a byte of it.
 */
export function readTokenHeader(raw: string, maxLength: number): TokenHeader {
  if (raw.length > maxLength) {
    throw new TokenTooLargeError(
      `token is ${raw.length} characters; the limit is ${maxLength}`,
    );
  }

  const encoded = trimOws(raw).replace(/^cashu:/i, '');
  if (!/^cashu[AB][A-Za-z0-9_\-+/=]+$/.test(encoded)) {
    throw new TokenMalformedError(
      'token must be a cashuA or cashuB token (base64url after the prefix)',
    );
  }

  const recent = recentTokens.get(encoded);
  if (recent !== undefined) return recent.header;

  const meta = decodeOrThrow(() => getTokenMetadata(encoded));
  if (encoded.startsWith('cashuA')) assertSingleMintV3(encoded);
  if (typeof meta.mint !== 'string' || meta.mint.length === 0) {
    throw new TokenMalformedError('token names no mint');
  }
  const amounts = meta.proofAmounts.map(toSafeAmount);
  if (amounts.length === 0)
    throw new TokenMalformedError('token has no proofs');

  const amount = amounts.reduce((a, b) => a + b, 0);
  if (!Number.isSafeInteger(amount)) {
    throw new TokenMalformedError('token amounts add up to an unsafe integer');
  }

  const header: TokenHeader = Object.freeze({
    encoded,
    mint: meta.mint,
    unit: meta.unit || 'sat',
    amount,
    proofCount: amounts.length,
  });
  recentTokens.set(encoded, { header });
  return header;
}

/**
 * Decodes the token fully, resolving short keyset ids (V4) against the
 * mint's keysets, and computes each proof's `Y`. A proof that appears twice
 * is a replay within the token itself.
 */
export function parseToken(
  header: TokenHeader,
  keysetIds: readonly string[],
): ParsedToken {
  // Short ids resolve against the list given, and the mint is the
  // caller's (normalised) URL: a decoding is reused only for both.
  const ids = keysetIds.join(' ');
  const recent = recentTokens.get(header.encoded);
  const earlier = recent?.parsed;
  if (earlier?.ids === ids && earlier.token.mint === header.mint) {
    return earlier.token;
  }
  const token = decodeProofs(header, keysetIds);
  if (recent !== undefined) {
    // Sized by what it now holds: decoded proofs take more than their
    // encoding (each has its Y, and objects around its strings).
    recentTokens.set(
      header.encoded,
      { header: recent.header, parsed: { ids, token } },
      { size: header.encoded.length + decodedSize(token) },
    );
  }
  return token;
}

/** About how many bytes a decoding holds beyond its token's encoding. */
function decodedSize(token: ParsedToken): number {
  let size = 0;
  for (const proof of token.proofs) {
    size += PROOF_OVERHEAD + proof.secret.length + proof.C.length;
    size += proof.id.length + (proof.witness?.length ?? 0);
    if (proof.dleq) {
      size += proof.dleq.e.length + proof.dleq.s.length;
      size += proof.dleq.r?.length ?? 0;
    }
  }
  return size;
}

// Per proof: its Y (66 characters), and an estimate of the objects,
// arrays and string headers around what it holds. With it, every shape
// of token bench/recent-tokens-memory.ts makes keeps under 8 MB of heap.
const PROOF_OVERHEAD = 66 + 200;

function decodeProofs(
  header: TokenHeader,
  keysetIds: readonly string[],
): ParsedToken {
  let token: ReturnType<typeof getDecodedToken>;
  try {
    token = getDecodedToken(header.encoded, keysetIds);
  } catch (err) {
    // A short keyset id (V4) that none of the mint's keysets starts with.
    if (/keyset/i.test(String((err as Error)?.message))) {
      throw new KeysetUnknownError(
        'a proof names a keyset id the mint does not have',
        { cause: err },
      );
    }
    throw new TokenMalformedError('token could not be decoded', { cause: err });
  }
  // Frozen: a decoding may be shared by every request sending the token.
  const proofs = Object.freeze(token.proofs.map(toWireProof));

  const ys = Object.freeze(proofs.map((p) => computeY(p.secret)));
  if (new Set(ys).size !== ys.length) {
    throw new TokenReplayedError('token holds the same proof more than once');
  }

  return Object.freeze({
    mint: header.mint,
    unit: header.unit,
    proofs,
    ys,
    amount: proofs.reduce((sum, p) => sum + p.amount, 0),
    fingerprint: fingerprint(ys),
  });
}

/**
 * A `cashuB` token of `proofs` (their id, amount, secret and C), for
 * handing stored value to a payer or operator. With `dleq`, each proof's
 * DLEQ proof (NUT-12) too, where the mint sent one: the receiver can check
 * offline that the mint signed it, at about twice the size.
 */
export function encodeToken(
  mint: string,
  unit: string,
  proofs: readonly WireProof[],
  { dleq = false }: { dleq?: boolean } = {},
): string {
  return getEncodedToken({
    mint,
    unit,
    proofs: proofs.map((p): Proof => ({
      id: p.id,
      amount: Amount.from(p.amount),
      secret: p.secret,
      C: p.C,
      ...(dleq &&
        p.dleq && {
          dleq: {
            e: p.dleq.e,
            s: p.dleq.s,
            ...(p.dleq.r !== undefined && { r: p.dleq.r }),
          },
        }),
    })),
  });
}

/** `Y = hash_to_curve(secret)` as compressed hex (NUT-00, NUT-07). */
export function computeY(secret: string): string {
  let y = recentYs.get(secret);
  if (y === undefined) {
    y = secretToY(secret);
    recentYs.set(secret, y);
  }
  return y;
}

// hash_to_curve is most of the cost of refusing a replay; a replayed token
// repeats secrets seen moments ago, so remember the latest few thousand,
// and at most 4 Mi characters of secrets and Ys: a secret may be as long
// as a token.
const recentYs = new LRUCache<string, string>({
  max: 16_384,
  maxSize: 4 << 20,
  sizeCalculation: (y, secret) => secret.length + y.length,
});

/**
 * Tokens decoded lately, by their encoding: a replayed token is the very
 * string sent moments ago, and decoding it twice (its header, then its
 * proofs against the mint's keysets) was a third of the CPU of refusing
 * it. Only tokens whose header decodes are kept: at most 1024, and 4 Mi
 * characters of them with their decodings (see decodedSize).
 */
const recentTokens = new LRUCache<string, RecentToken>({
  max: 1024,
  maxSize: 4 << 20,
  sizeCalculation: (_, encoded) => encoded.length,
});

interface RecentToken {
  readonly header: TokenHeader;
  /** The last decoding of its proofs, and the keyset ids it used. */
  parsed?: { readonly ids: string; readonly token: ParsedToken };
}

/** First 12 hex of sha256 over the sorted Ys: identifies, reveals nothing. */
export function fingerprint(ys: readonly string[]): string {
  const hash = createHash('sha256');
  for (const y of [...ys].sort()) hash.update(y);
  return hash.digest('hex').slice(0, 12);
}

function toWireProof(proof: {
  id: string;
  amount: unknown;
  secret: string;
  C: string;
  dleq?: { e: string; s: string; r?: string };
  witness?: unknown;
}): WireProof {
  if (typeof proof.secret !== 'string' || proof.secret.length === 0) {
    throw new TokenMalformedError('a proof has no secret');
  }
  if (typeof proof.C !== 'string' || !/^0[23][0-9a-f]{64}$/i.test(proof.C)) {
    throw new TokenMalformedError('a proof has no valid signature point C');
  }
  if (typeof proof.id !== 'string' || !/^[0-9a-f]{16,66}$/i.test(proof.id)) {
    throw new TokenMalformedError('a proof has no valid keyset id');
  }

  const wire: WireProof = Object.freeze({
    id: proof.id,
    amount: toSafeAmount(proof.amount),
    secret: proof.secret,
    C: proof.C,
    ...(proof.dleq ? { dleq: dleqOf(proof.dleq) } : {}),
    ...(typeof proof.witness === 'string' ? { witness: proof.witness } : {}),
    ...(proof.witness && typeof proof.witness === 'object'
      ? { witness: JSON.stringify(proof.witness) }
      : {}),
  });
  return wire;
}

/**
 * A DLEQ proof's three scalars and nothing else: a V3 token's JSON may
 * hang anything on it, and a decoding is kept. The checks also flatten
 * the decoder's hex strings, built a byte at a time (some 1 KB each
 * until then).
 */
function dleqOf(dleq: { e: unknown; s: unknown; r?: unknown }) {
  const { e, s, r } = dleq;
  if (!isHex(e) || !isHex(s) || (r !== undefined && !isHex(r))) {
    throw new TokenMalformedError(
      "a proof's DLEQ proof is not three hex scalars (e, s, r)",
    );
  }
  return Object.freeze({ e, s, ...(r !== undefined && { r }) });
}

function isHex(value: unknown): value is string {
  return typeof value === 'string' && /^[0-9a-f]{1,66}$/i.test(value);
}

function toSafeAmount(value: unknown): number {
  const n =
    typeof value === 'object' && value !== null && 'toBigInt' in value
      ? (value as { toBigInt(): bigint }).toBigInt()
      : typeof value === 'number' && Number.isInteger(value)
        ? BigInt(value)
        : undefined;
  if (n === undefined || n <= 0n || n > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new TokenMalformedError('a proof amount is not a positive integer');
  }
  return Number(n);
}

/** A V3 token may name several mints; Paygress takes one mint per token. */
function assertSingleMintV3(encoded: string): void {
  const json = decodeOrThrow(() =>
    JSON.parse(Buffer.from(encoded.slice(6), 'base64url').toString('utf8')),
  ) as { token?: unknown };
  if (!Array.isArray(json.token) || json.token.length !== 1) {
    throw new TokenMalformedError(
      'a cashuA token must hold proofs from exactly one mint',
    );
  }
}

function decodeOrThrow<T>(decode: () => T): T {
  try {
    return decode();
  } catch (err) {
    if (err instanceof TokenMalformedError) throw err;
    throw new TokenMalformedError('token could not be decoded', {
      cause: err,
    });
  }
}
