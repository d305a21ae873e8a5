/**
 * fast-check arbitraries for what an attacker can put in front of
 * Paygress: header values, strings that look like Cashu tokens, V3 and V4
 * tokens whose every field may be wrong, and request targets. The tokens
 * are structurally plausible so that the decoders get past their first
 * check and the deeper paths are exercised too.
 */
import fc from 'fast-check';
import {
  RawCbor,
  arrayHead,
  cashuB,
  nestedArrays,
  type CborValue,
} from './cbor.ts';

const BASE64URL = [
  ...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_',
];

/** Strings over the base64url alphabet (plus the odd `=` and `+/`). */
export const base64urlString = (maxLength = 400): fc.Arbitrary<string> =>
  fc.string({
    unit: fc.constantFrom(...BASE64URL, '=', '+', '/'),
    maxLength,
  });

/** Any string, including lone surrogates and control characters. */
export const anyString = (maxLength = 200): fc.Arbitrary<string> =>
  fc.string({ unit: 'binary', maxLength });

/** Bytes read as text the way a server might: latin1 or lossy UTF-8. */
export const bytesAsText = (maxLength = 200): fc.Arbitrary<string> =>
  fc
    .tuple(
      fc.uint8Array({ maxLength }),
      fc.constantFrom('latin1', 'utf8') as fc.Arbitrary<BufferEncoding>,
    )
    .map(([bytes, encoding]) => Buffer.from(bytes).toString(encoding));

/** A CBOR text string whose bytes are not valid UTF-8. */
const invalidUtf8Text: fc.Arbitrary<CborValue> = fc
  .uint8Array({ minLength: 1, maxLength: 20 })
  .map((bytes) => {
    const body = Uint8Array.from([0xff, ...bytes]);
    return new RawCbor(Uint8Array.from([0x60 | body.length, ...body]));
  });

/** `cashuA…`/`cashuB…` (maybe with `cashu:` and blanks) and random tail. */
export const randomCashuString: fc.Arbitrary<string> = fc
  .tuple(
    fc.constantFrom('', 'cashu:', 'CASHU:', ' ', '\t'),
    fc.constantFrom('cashuA', 'cashuB', 'cashub', 'cashuC'),
    fc.oneof(base64urlString(), anyString(40)),
    fc.constantFrom('', ' ', '==', '\n'),
  )
  .map((parts) => parts.join(''));

/** Proof amounts: sane, zero, negative, fractional, huge, wrong types. */
export const amount: fc.Arbitrary<CborValue> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(1, 2, 8, 64, 1024) },
  fc.constantFrom(0, -1, -8, 0.5, 1.5, Number.NaN, Infinity, -Infinity),
  fc.constantFrom(
    2 ** 53 - 1,
    2 ** 53,
    2 ** 60,
    2n ** 53n + 1n,
    2n ** 64n - 1n,
    2n ** 64n,
    -(2n ** 64n),
  ),
  fc.integer(),
  fc.bigInt({ min: -(2n ** 80n), max: 2n ** 80n }),
  fc.double(),
  fc.constantFrom<CborValue>('8', null, true, [], {}, new Uint8Array([8])),
);

/** Keyset ids: legacy `00…`, short and full `01…`, and nonsense. */
export const keysetIdBytes: fc.Arbitrary<CborValue> = fc.oneof(
  { weight: 3, arbitrary: fc.constant(hex('00ffd48b8f5ecf80')) },
  fc.uint8Array({ minLength: 7, maxLength: 7 }).map((b) => prefixed(0, b)),
  fc.uint8Array({ minLength: 7, maxLength: 7 }).map((b) => prefixed(1, b)),
  fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => prefixed(1, b)),
  fc.uint8Array({ maxLength: 40 }),
  fc.constantFrom<CborValue>('00ffd48b8f5ecf80', 0, null),
);

/** Signature points: valid-looking, wrong prefix, wrong length, wrong type. */
export const point: fc.Arbitrary<CborValue> = fc.oneof(
  { weight: 3, arbitrary: fc.constant(hex('02' + 'ab'.repeat(32))) },
  fc
    .tuple(fc.constantFrom(2, 3, 4, 0), fc.uint8Array({ minLength: 32 }))
    .map(([p, b]) => prefixed(p, b.subarray(0, 32))),
  fc.uint8Array({ maxLength: 70 }),
  fc.constantFrom<CborValue>('02' + 'ab'.repeat(32), 7, null),
);

/** A V4 proof map with every field possibly wrong or missing. */
export const v4Proof: fc.Arbitrary<CborValue> = fc.record(
  {
    a: amount,
    s: fc.oneof(
      { weight: 4, arbitrary: fc.string({ minLength: 1, maxLength: 64 }) },
      fc.constantFrom<CborValue>('', 5, null, new Uint8Array([1, 2])),
      invalidUtf8Text,
    ),
    c: point,
    d: fc.oneof(
      fc.record({ e: fc.uint8Array(), s: fc.uint8Array(), r: fc.uint8Array() }),
      fc.constantFrom<CborValue>('dleq', 1, null),
    ),
    w: fc.oneof(fc.string(), fc.constantFrom<CborValue>(3, null)),
  },
  { requiredKeys: ['a', 's', 'c'] },
);

/** A V4 token: one or more keyset groups, and fields that may be wrong. */
export const v4Token: fc.Arbitrary<CborValue> = fc.record(
  {
    m: fc.oneof(
      { weight: 4, arbitrary: fc.constant('https://mint.example') },
      fc.webUrl(),
      fc.constantFrom<CborValue>('', 1, null),
      invalidUtf8Text,
    ),
    u: fc.oneof(
      { weight: 4, arbitrary: fc.constant('sat') },
      fc.string({ maxLength: 8 }),
      fc.constantFrom<CborValue>(0, null),
    ),
    d: fc.string({ maxLength: 40 }),
    t: fc.oneof(
      {
        weight: 5,
        arbitrary: fc.array(
          fc.record({
            i: keysetIdBytes,
            p: fc.array(v4Proof, { maxLength: 6 }),
          }),
          { maxLength: 3 },
        ),
      },
      fc.constantFrom<CborValue>(null, 'proofs', {}, [[]]),
      fc.nat({ max: 20_000 }).map((depth) => nestedArrays(depth)),
      fc
        .bigInt({ min: 1n, max: 2n ** 64n - 1n })
        .map((length) => arrayHead(length)),
    ),
  },
  { requiredKeys: ['t'] },
);

/** `cashuB…` from {@link v4Token}, sometimes cut short at a random byte. */
export const v4TokenString: fc.Arbitrary<string> = fc
  .tuple(v4Token, fc.option(fc.nat(), { nil: undefined }))
  .map(([token, cut]) => {
    const full = cashuB(token);
    return cut === undefined ? full : full.slice(0, 6 + (cut % full.length));
  });

/** A V3 proof object (JSON), with every field possibly wrong. */
const v3Proof = fc.record(
  {
    id: fc.oneof(
      fc.constant('00ffd48b8f5ecf80'),
      fc.stringMatching(/^[0-9a-f]{0,70}$/),
      fc.constantFrom<unknown>(7, null),
    ),
    amount: fc.oneof(
      fc.constantFrom(1, 8, 0, -1, 0.5, 2 ** 53, 1e300),
      fc.constantFrom<unknown>('8', null),
    ),
    secret: fc.oneof(fc.string({ maxLength: 64 }), fc.constant<unknown>(5)),
    C: fc.oneof(
      fc.constant('02' + 'ab'.repeat(32)),
      fc.stringMatching(/^[0-9a-f]{0,70}$/),
    ),
  },
  { requiredKeys: ['amount', 'secret', 'C'] },
);

/** `cashuA…` tokens: one mint, several mints (refused), or none. */
export const v3TokenString: fc.Arbitrary<string> = fc
  .record(
    {
      token: fc.oneof(
        fc.array(
          fc.record({
            mint: fc.oneof(fc.constant('https://mint.example'), fc.webUrl()),
            proofs: fc.array(v3Proof, { maxLength: 4 }),
          }),
          { maxLength: 3 },
        ),
        fc.constantFrom<unknown>(null, 'x', {}),
      ),
      unit: fc.constantFrom('sat', 'usd', ''),
      memo: fc.string({ maxLength: 20 }),
    },
    { requiredKeys: ['token'] },
  )
  .map(
    (json) =>
      `cashuA${Buffer.from(JSON.stringify(json)).toString('base64url')}`,
  );

/** Header maps as a proxy might forward them, with token-bearing names. */
export const headerMap: fc.Arbitrary<Record<string, string>> = fc.dictionary(
  fc.oneof(
    fc.constantFrom('x-cashu', 'authorization', 'cookie', '__proto__'),
    fc.string({ maxLength: 20 }),
  ),
  fc.oneof(
    randomCashuString,
    fc
      .tuple(
        fc.constantFrom('Bearer ', 'bearer\t', 'Basic '),
        randomCashuString,
      )
      .map(([scheme, token]) => scheme + token),
    anyString(),
  ),
  { maxKeys: 6 },
);

/** Request targets: paths, queries, fragments, absolute forms, junk. */
export const requestTarget: fc.Arbitrary<string> = fc.oneof(
  fc.webPath(),
  fc
    .tuple(fc.webPath(), fc.webQueryParameters(), fc.webFragments())
    .map(([p, q, f]) => `${p}?${q}#${f}`),
  fc.webUrl({ withQueryParameters: true, withFragments: true }),
  fc.string({ unit: 'grapheme-ascii', maxLength: 80 }),
  fc.constantFrom('', '?', '#', '??', '/#?', '*', '//x', 'a?b#c?d'),
);

function hex(value: string): Uint8Array {
  return Uint8Array.from(Buffer.from(value, 'hex'));
}

function prefixed(first: number, rest: Uint8Array): Uint8Array {
  return Uint8Array.from([first, ...rest]);
}
