/**
 * Token parsing under hostile input: whatever a client puts in `X-Cashu`
 * or `Authorization`, `findToken`, `readTokenHeader` and `parseToken`
 * return a value or refuse with a PaygressError whose code is a documented
 * reason, quickly, and what they return is well formed.
 */
import t from 'tap';
import fc from 'fast-check';
import { PaygressError, REASONS } from '../../src/core/errors.ts';
import {
  findToken,
  trimOws,
  parseToken,
  readTokenHeader,
  type TokenHeader,
} from '../../src/core/token.ts';
import {
  anyString,
  base64urlString,
  bytesAsText,
  headerMap,
  randomCashuString,
  v3TokenString,
  v4TokenString,
} from '../support/arbitraries.ts';
import { cashuB, type CborValue } from '../support/cbor.ts';

const LIMIT = 16_384;
const LEGACY_ID = '00ffd48b8f5ecf80';
// A full V2 keyset id (33 bytes, `01` prefix) and its 8-byte short form.
const FULL_ID = '01' + 'c0ffee'.repeat(10) + 'c0ff';
const SHORT_ID = FULL_ID.slice(0, 16);
const KEYSET_LISTS = [[], [LEGACY_ID], [FULL_ID], [LEGACY_ID, FULL_ID]];
const C = Buffer.from('02' + 'ab'.repeat(32), 'hex');
const RUNS = { numRuns: 400 };

/** Runs `fn`; anything thrown must be a PaygressError with a known code. */
function refusesCleanly<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch (err) {
    if (!(err instanceof PaygressError) || !(err.code in REASONS)) throw err;
    return undefined;
  }
}

function checkHeader(header: TokenHeader): void {
  if (!Number.isSafeInteger(header.amount) || header.amount <= 0) {
    throw new Error(`header amount ${header.amount} is not a safe positive`);
  }
  if (header.proofCount < 1 || header.mint.length === 0) {
    throw new Error('header without proofs or mint');
  }
}

/** Header then full parse against each keyset list; both must be clean. */
function parsesCleanly(raw: string): void {
  const header = refusesCleanly(() => readTokenHeader(raw, LIMIT));
  if (header === undefined) return;
  checkHeader(header);
  for (const ids of KEYSET_LISTS) {
    const token = refusesCleanly(() => parseToken(header, ids));
    if (token === undefined) continue;
    const sum = token.proofs.reduce((s, p) => s + p.amount, 0);
    if (token.amount !== sum || token.ys.length !== token.proofs.length) {
      throw new Error('parsed token amount or Ys do not match its proofs');
    }
    if (!token.proofs.every((p) => Number.isSafeInteger(p.amount))) {
      throw new Error('a parsed proof amount is not a safe integer');
    }
  }
}

function v4(
  proofs: CborValue[],
  id: CborValue = Buffer.from(LEGACY_ID, 'hex'),
) {
  return cashuB({
    m: 'https://mint.example',
    u: 'sat',
    t: [{ i: id, p: proofs }],
  });
}

const proof = (secret: string, a: CborValue = 8) => ({ a, s: secret, c: C });

t.test('findToken never throws and returns a trimmed token', async (t) => {
  fc.assert(
    fc.property(headerMap, (headers) => {
      const token = findToken(headers);
      // Trimmed of spaces and tabs only, as proxies read a header.
      return (
        token === undefined || (token.length > 0 && token === trimOws(token))
      );
    }),
    { numRuns: 2000 },
  );
  t.pass('2000 header maps');
});

t.test('arbitrary strings and bytes are refused cleanly', async (t) => {
  const input = fc.oneof(
    anyString(400),
    bytesAsText(400),
    randomCashuString,
    base64urlString().map((s) => `cashuB${s}`),
    base64urlString().map((s) => `cashuA${s}`),
  );
  fc.assert(
    fc.property(input, (raw) => parsesCleanly(raw)),
    {
      numRuns: 3000,
    },
  );
  t.pass('3000 strings');
});

t.test('crafted V4 tokens: every field wrong, cut short, nested', async (t) => {
  fc.assert(
    fc.property(v4TokenString, (raw) => parsesCleanly(raw)),
    RUNS,
  );
  t.pass('crafted cashuB tokens');
});

t.test('crafted V3 tokens, including several mints', async (t) => {
  fc.assert(
    fc.property(v3TokenString, (raw) => parsesCleanly(raw)),
    RUNS,
  );
  t.pass('crafted cashuA tokens');
});

t.test('a cashuA token naming two mints is malformed', async (t) => {
  const entry = (mint: string) => ({
    mint,
    proofs: [{ id: LEGACY_ID, amount: 8, secret: mint, C: C.toString('hex') }],
  });
  const json = {
    token: [entry('https://a.example'), entry('https://b.example')],
  };
  const raw = `cashuA${Buffer.from(JSON.stringify(json)).toString('base64url')}`;
  t.throws(() => readTokenHeader(raw, LIMIT), {
    code: 'PAYGRESS_TOKEN_MALFORMED',
  });
});

t.test('oversized tokens are refused by length alone', async (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 4096 }), (limit) => {
      try {
        readTokenHeader('cashuB' + '\uFFFF'.repeat(limit), limit);
        return false;
      } catch (err) {
        return (err as PaygressError).code === 'PAYGRESS_TOKEN_TOO_LARGE';
      }
    }),
    { numRuns: 200 },
  );
  // Megabytes of text are refused without being read.
  t.throws(() => readTokenHeader('cashuB' + 'A'.repeat(8 << 20), LIMIT), {
    code: 'PAYGRESS_TOKEN_TOO_LARGE',
  });
});

t.test('amounts that are not positive safe integers', async (t) => {
  for (const a of [
    0,
    -1,
    0.5,
    2 ** 53,
    2n ** 64n - 1n,
    2n ** 70n,
    -(2n ** 70n),
  ]) {
    t.throws(
      () => readTokenHeader(v4([proof('s', a)]), LIMIT),
      {
        code: 'PAYGRESS_TOKEN_MALFORMED',
      },
      `amount ${a}`,
    );
  }
  const max = readTokenHeader(v4([proof('s', 2 ** 53 - 1)]), LIMIT);
  t.equal(max.amount, 2 ** 53 - 1, 'the largest safe amount is read exactly');
});

t.test(
  'the sum of safe amounts above 2^53 is refused, not rounded',
  async (t) => {
    const raw = v4([proof('a', 2 ** 53 - 1), proof('b', 2 ** 53 - 1)]);
    const header = refusesCleanly(() => readTokenHeader(raw, LIMIT));
    t.equal(header, undefined, 'refused as malformed');
  },
);

t.test('the same proof twice is a replay within the token', async (t) => {
  const header = readTokenHeader(v4([proof('twice'), proof('twice')]), LIMIT);
  t.throws(() => parseToken(header, [LEGACY_ID]), {
    code: 'PAYGRESS_TOKEN_REPLAYED',
  });
});

t.test('thousands of proofs parse in one pass', async (t) => {
  const proofs = Array.from({ length: 3000 }, (_, i) => proof(`s${i}`, 1));
  const raw = v4(proofs);
  t.ok(raw.length > LIMIT, 'longer than the default limit');
  t.throws(() => readTokenHeader(raw, LIMIT), {
    code: 'PAYGRESS_TOKEN_TOO_LARGE',
  });

  const header = readTokenHeader(raw, raw.length);
  const token = parseToken(header, [LEGACY_ID]);
  t.equal(token.amount, 3000);
  t.equal(new Set(token.ys).size, 3000);
});

t.test('short keyset ids resolve only against a known full id', async (t) => {
  const short = Buffer.from(SHORT_ID, 'hex');
  const header = readTokenHeader(v4([proof('short')], short), LIMIT);

  const token = parseToken(header, [LEGACY_ID, FULL_ID]);
  t.equal(token.proofs[0]!.id, FULL_ID, 'expanded to the full id');
  t.throws(
    () => parseToken(header, [LEGACY_ID]),
    {
      code: 'PAYGRESS_KEYSET_UNKNOWN',
    },
    'an unknown short id cannot be resolved: the payer may retry',
  );

  // A full id the mint does not list is read as is; the gate checks it.
  const unknown = '01' + 'ee'.repeat(32);
  const full = readTokenHeader(
    v4([proof('full')], Buffer.from(unknown, 'hex')),
    LIMIT,
  );
  const parsed = refusesCleanly(() => parseToken(full, [LEGACY_ID]));
  t.ok(parsed === undefined || parsed.proofs[0]!.id === unknown);
});

t.test(
  'a token sent again reuses its decoding, never across keysets',
  async (t) => {
    const raw = v4(
      [proof('again'), proof('again, too')],
      Buffer.from(SHORT_ID, 'hex'),
    );
    const header = readTokenHeader(raw, LIMIT);
    t.equal(readTokenHeader(` ${raw}`, LIMIT), header, 'the header is reused');
    t.ok(Object.isFrozen(header));

    const token = parseToken(header, [LEGACY_ID, FULL_ID]);
    t.equal(parseToken(header, [LEGACY_ID, FULL_ID]), token, 'so is the parse');
    t.throws(
      () => parseToken(header, [LEGACY_ID]),
      {
        code: 'PAYGRESS_KEYSET_UNKNOWN',
      },
      'not for a list without its keyset',
    );
    const again = parseToken(header, [FULL_ID]);
    t.not(again, token, 'another list decodes again');
    t.same(again, token);
    t.equal(
      parseToken({ ...header, mint: 'https://other.example' }, [FULL_ID]).mint,
      'https://other.example',
      'nor for another mint',
    );

    // Shared by every request sending the token: nothing of it can change.
    t.ok(Object.isFrozen(token) && Object.isFrozen(token.proofs));
    t.ok(Object.isFrozen(token.ys) && Object.isFrozen(token.proofs[0]));
    t.throws(() => {
      (token.proofs[0] as { amount: number }).amount = 1;
    }, TypeError);

    // A refused parse is not kept: it is refused again.
    const twice = readTokenHeader(v4([proof('twice'), proof('twice')]), LIMIT);
    for (let i = 0; i < 2; i++) {
      t.throws(() => parseToken(twice, [LEGACY_ID]), {
        code: 'PAYGRESS_TOKEN_REPLAYED',
      });
    }
  },
);

t.test('a DLEQ proof keeps its three scalars and nothing else', async (t) => {
  const v3 = (dleq: unknown) =>
    `cashuA${Buffer.from(
      JSON.stringify({
        token: [
          {
            mint: 'https://mint.example',
            proofs: [
              {
                id: LEGACY_ID,
                amount: 8,
                secret: 'with a dleq',
                C: C.toString('hex'),
                dleq,
              },
            ],
          },
        ],
        unit: 'sat',
      }),
    ).toString('base64url')}`;
  const e = 'e'.repeat(64);
  const s = '5'.repeat(64);
  const r = 'a'.repeat(64);

  const junk = parseToken(
    readTokenHeader(v3({ e, s, r, j: Array(100).fill({}) }), LIMIT),
    [LEGACY_ID],
  );
  const dleq = junk.proofs[0]!.dleq;
  t.same(dleq, { e, s, r }, 'what else the JSON hung on it is dropped');
  t.ok(Object.isFrozen(dleq));

  for (const bad of [
    { e: [e], s, r },
    { e, s: { hex: s }, r },
    { e, s, r: 7 },
    { e: 'not hex', s, r },
    { e, s, r: 'a'.repeat(67) },
  ]) {
    t.throws(
      () => parseToken(readTokenHeader(v3(bad), LIMIT), [LEGACY_ID]),
      { code: 'PAYGRESS_TOKEN_MALFORMED' },
      JSON.stringify(bad).slice(0, 40),
    );
  }
});
