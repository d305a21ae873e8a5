/**
 * `redactSecrets`: the text of errors and of a mint's answers, as logged,
 * holds no token and no proof secret, whatever surrounds them, and keeps
 * the public values an operator reads (keyset ids, Ys, signatures).
 */
import { Amount, getEncodedToken, type Proof } from '@cashu/cashu-ts';
import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import t from 'tap';
import fc from 'fast-check';
import {
  redactCredentials,
  redactSecrets,
  withoutValues,
} from '../../src/core/redact.ts';
import { anyString } from '../support/arbitraries.ts';

const hex = (bytes: number) => randomBytes(bytes).toString('hex');
const KEYSET = '009a1f293253e41e';
const MINT = 'http://127.0.0.1:3338';

/** A token in either serialisation (cashu-ts writes only V4). */
function encode(proofs: Proof[], version: 3 | 4): string {
  if (version === 4)
    return getEncodedToken({ mint: MINT, unit: 'sat', proofs });
  const wire = proofs.map((p) => ({ ...p, amount: p.amount.toNumber() }));
  const token = { token: [{ mint: MINT, proofs: wire }], unit: 'sat' };
  return `cashuA${Buffer.from(JSON.stringify(token)).toString('base64url')}`;
}

function proof(secret = hex(32)): Proof {
  return { id: KEYSET, amount: Amount.from(8), secret, C: `02${hex(32)}` };
}

t.test('a token in either version is taken out', async (t) => {
  const proofs = [proof(), proof()];
  for (const version of [3, 4] as const) {
    const encoded = encode(proofs, version);
    const text = redactSecrets(`Unexpected token, "${encoded}" is not valid`);
    t.notOk(text.includes(encoded.slice(0, 20)), `V${version}: gone`);
    t.equal(text, 'Unexpected token, "[redacted]" is not valid');
  }
});

t.test("a proof's secret is taken out as JSON and as printed", async (t) => {
  const p = proof();
  const json = JSON.stringify({ inputs: [p] });
  t.equal(
    redactSecrets(json),
    JSON.stringify({ inputs: [{ ...p, secret: '[redacted]' }] }),
    'JSON: the secret only',
  );
  const printed = inspect({ inputs: [p] }, { breakLength: Infinity });
  t.notOk(redactSecrets(printed).includes(p.secret), 'as Node prints it');
  t.ok(redactSecrets(printed).includes(p.C), 'the signature stays');

  // A NUT-10 secret is JSON in a string; its nonce is what makes it secret.
  const nonce = hex(32);
  const locked = proof(
    JSON.stringify(['P2PK', { nonce, data: `02${hex(32)}`, tags: [] }]),
  );
  const out = redactSecrets(JSON.stringify(locked));
  t.notOk(out.includes(nonce), 'a NUT-10 secret');
  t.notOk(
    redactSecrets(JSON.stringify(JSON.stringify(locked))).includes(nonce),
    'quoted twice',
  );
});

t.test('a secret as Python prints it, or beside its C', async (t) => {
  const secret = hex(32);
  const C = `02${hex(32)}`;
  for (const text of [
    `{'secret': '${secret}', 'C': '${C}'}`,
    `input secret='${secret}'`,
    `${secret}${C}`,
    `${secret}f`,
  ]) {
    t.notOk(
      redactSecrets(text).includes(secret.slice(0, 20)),
      text.slice(0, 24),
    );
  }
  t.equal(
    redactSecrets(`cashuA${'eyJ0'.repeat(8)}%2B${'x'.repeat(9)} end`),
    '[redacted] end',
    'percent-encoded',
  );
  // Words that start like one are not tokens: Paygress reads only the
  // lower-case prefix, and a real token runs to some 200 characters.
  for (const text of [
    '/docs/cashuAPI/reference',
    '/blog/cashuAndLightning',
    `CASHUB${'o2F0'.repeat(12)}`,
  ]) {
    t.equal(redactSecrets(text), text, text.slice(0, 24));
  }
  t.equal(
    redactSecrets(`image@sha256:${'ab'.repeat(32)} failed`),
    `image@sha256:${'ab'.repeat(32)} failed`,
    'a digest named as one stays',
  );
});

t.test('known secrets are taken out by value, in any form', async (t) => {
  const plain = 'Zk3xQ9vLm2Pq7Rt8';
  const quoted = '["P2PK",{"nonce":"n","data":"d"}]';
  const text = [
    `bare ${plain}.`,
    JSON.stringify({ secret: quoted }),
    JSON.stringify(JSON.stringify({ secret: quoted })),
  ].join(' | ');
  const out = withoutValues(text, [plain, quoted, '']);
  t.notOk(out.includes(plain));
  t.notOk(out.includes('nonce'), 'escaped once and twice');
  t.equal(out.split('[redacted]').length - 1, 3);
  t.equal(withoutValues('abc', []), 'abc');
  t.equal(
    withoutValues('xaby', ['ab', 'xaby']),
    '[redacted]',
    'the longest first',
  );
});

t.test(
  'a value is taken out where it is quoted whole, in one pass',
  async (t) => {
    const secret = 'Zk3x/Q9"v\\Lm';
    const hexSecret = hex(32);
    const forms = [
      JSON.stringify({ secret }).replaceAll('/', '\\/'),
      encodeURIComponent(JSON.stringify({ secret })),
      `{'secret': '${secret.replaceAll('\\', '\\\\')}'}`,
      `%22${hexSecret.toUpperCase()}%22`,
    ];
    for (const form of forms) {
      const out = withoutValues(form, [secret, hexSecret]);
      t.notOk(
        out.includes('Zk3x') ||
          out.includes(hexSecret.slice(0, 16).toUpperCase()),
        form,
      );
    }
    // Letters of "[redacted]" as secrets: nothing grows, words stay whole.
    const letters = ['e', 'd', '[', ']', 'r', 'a', 'c', 't'];
    const long = 'e'.repeat(100_000);
    t.equal(withoutValues(long, letters), long, 'inside a word: not a quote');
    t.equal(
      withoutValues('outputs have already been signed; e', letters),
      'outputs have already been signed; [redacted]',
    );
    t.equal(
      withoutValues('e e e', letters),
      '[redacted] [redacted] [redacted]',
    );
  },
);

t.test('credentials of a client go, a path keeps its hashes', async (t) => {
  const sha = hex(32);
  const grant = `pgr1.${'eyJr'.repeat(4)}.${'c2ln'.repeat(4)}`;
  t.equal(
    redactCredentials(`Authorization: Bearer x.y-z, then ${grant} /f/${sha}`),
    `Authorization: Bearer [redacted], then [redacted] /f/${sha}`,
  );
  t.notOk(redactSecrets(`/f/${sha}`).includes(sha), 'a secret-shaped run');
});

t.test("a URL's user, password, query and fragment go", async (t) => {
  t.equal(
    redactSecrets(
      'Request cannot be constructed from a URL that includes credentials: https://kube:Pa/ss@10.0.0.1:6443/api?access_token=T0k3n#x, retrying',
    ),
    'Request cannot be constructed from a URL that includes credentials: https://[redacted]@10.0.0.1:6443/api?[redacted] retrying',
  );
  t.equal(
    redactSecrets('fetch failed for http://127.0.0.1:3338/v1/swap'),
    'fetch failed for http://127.0.0.1:3338/v1/swap',
    'a plain one stays',
  );
});

t.test('public values stay readable', async (t) => {
  const v2Keyset = `01${hex(32)}`;
  const y = `03${hex(32)}`;
  const text = `keyset ${v2Keyset} inactive (${KEYSET}); Y ${y}; secretive: 'x'`;
  t.equal(redactSecrets(text), text);
  t.equal(redactSecrets(''), '');
});

t.test('nothing of any secret survives, whatever surrounds it', async (t) => {
  fc.assert(
    fc.property(
      anyString(80),
      anyString(80),
      fc.constantFrom<'hex' | 'json' | 'v3' | 'v4'>('hex', 'json', 'v3', 'v4'),
      (before, after, form) => {
        const p = proof();
        const middle =
          form === 'hex'
            ? p.secret
            : form === 'json'
              ? JSON.stringify(p)
              : encode([p], form === 'v3' ? 3 : 4);
        // Separated from what surrounds it, as a message quotes a value.
        const out = redactSecrets(`${before} ${middle} ${after}`);
        return (
          !out.includes(p.secret) &&
          (form === 'hex' ||
            form === 'json' ||
            !out.includes(middle.slice(0, 14)))
        );
      },
    ),
    { numRuns: 300 },
  );
});
