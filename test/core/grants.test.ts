import { randomUUID } from 'node:crypto';
import t from 'tap';
import { findToken } from '../../src/core/token.ts';
import {
  GrantSigner,
  createGrant,
  extendGrant,
  grantIdFor,
  keyId,
  paymentTag,
  readGrantCredential,
  type Grant,
} from '../../src/core/grants.ts';
import { asIssuedBeforeHostCookies } from '../support/legacy-grant.ts';

const KEY = 'current-key-current-key-current-key!';
const OLD = 'previous-key-previous-key-previous-key';
const T0 = 1_700_000_000_000;

const INVALID = { code: 'PAYGRESS_GRANT_INVALID', fault: 'payer' };
const EXPIRED = { code: 'PAYGRESS_GRANT_EXPIRED', fault: 'payer' };
const SCOPE = { code: 'PAYGRESS_GRANT_SCOPE', fault: 'payer' };

function fakeClock(now = T0) {
  return { now: () => now, set: (ms: number) => (now = ms) };
}

function grant(fields: Partial<Grant> = {}): Grant {
  return {
    id: grantIdFor(randomUUID()),
    route: 'compute',
    issuedAt: T0,
    expiresAt: T0 + 60_000,
    singleUse: false,
    amount: 10,
    unit: 'sat',
    ...fields,
  };
}

/** Decodes, edits and re-encodes the payload, keeping the old MAC. */
function withPayload(credential: string, edit: (p: any) => void): string {
  const [prefix, body, mac] = credential.split('.');
  const payload = JSON.parse(Buffer.from(body!, 'base64url').toString());
  edit(payload);
  const encoded = Buffer.from(JSON.stringify(payload)).toString('base64url');
  return `${prefix}.${encoded}.${mac}`;
}

t.test('a grant survives issue and verify unchanged', async (t) => {
  const signer = new GrantSigner({ key: KEY, clock: fakeClock() });
  const original = grant({ singleUse: true, amount: 21, unit: 'usd' });

  const credential = signer.issue(original);
  t.match(credential, /^pgr1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/);
  t.same(signer.verify(credential, 'compute'), original);
  t.ok(credential.length < 300, 'small enough for a header');
});

t.test('a payment always names the same grant, url-safe', async (t) => {
  const payments = Array.from({ length: 100 }, () => randomUUID());
  const ids = new Set(payments.map(grantIdFor));
  t.equal(ids.size, 100, 'one grant id per payment');
  for (const id of ids) t.match(id, /^[A-Za-z0-9_-]{22}$/);
  t.equal(grantIdFor(payments[0]!), grantIdFor(payments[0]!), 'stable');
  t.not(grantIdFor(payments[0]!), payments[0], 'not the payment id itself');
});

t.test('createGrant stamps issue time and expiry from now', async (t) => {
  const payment = randomUUID();
  const g = createGrant({
    payment,
    route: 'compute',
    seconds: 90,
    singleUse: false,
    amount: 15,
    unit: 'sat',
    now: T0,
  });
  t.same(
    { ...g, id: 'x' },
    {
      id: 'x',
      route: 'compute',
      issuedAt: T0,
      expiresAt: T0 + 90_000,
      singleUse: false,
      amount: 15,
      unit: 'sat',
      paidBy: paymentTag(payment),
    },
  );
});

t.test(
  'a grant names the payment that bought or last lengthened it',
  async (t) => {
    const signer = new GrantSigner({ key: KEY, clock: fakeClock() });
    const [first, second] = [randomUUID(), randomUUID()];
    t.match(paymentTag(first), /^[A-Za-z0-9_-]{16}$/);
    t.not(paymentTag(first), paymentTag(second));
    const bought = createGrant({
      payment: first,
      route: 'compute',
      seconds: 60,
      singleUse: false,
      amount: 10,
      unit: 'sat',
      now: T0,
    });
    const topped = extendGrant(bought, 60, 3600, T0, 10, paymentTag(second));
    t.equal(topped.paidBy, paymentTag(second));
    t.equal(extendGrant(bought, 60, 3600, T0).paidBy, paymentTag(first));
    t.same(signer.authentic(signer.issue(topped)), topped, 'it survives issue');
    const older = grant();
    t.equal(signer.authentic(signer.issue(older)).paidBy, undefined);
  },
);

t.test('a grant expires on the injected clock', async (t) => {
  const clock = fakeClock();
  const signer = new GrantSigner({ key: KEY, clock });
  const credential = signer.issue(grant());

  clock.set(T0 + 59_999);
  t.equal(signer.verify(credential, 'compute').route, 'compute');
  clock.set(T0 + 60_000);
  t.throws(() => signer.verify(credential, 'compute'), EXPIRED);
});

t.test('a tampered payload is refused', async (t) => {
  const signer = new GrantSigner({ key: KEY, clock: fakeClock() });
  const credential = signer.issue(grant());

  const longer = withPayload(credential, (p) => (p.e += 3_600_000));
  t.throws(() => signer.verify(longer, 'compute'), INVALID);
  const rerouted = withPayload(credential, (p) => (p.r = 'premium'));
  t.throws(() => signer.verify(rerouted, 'premium'), INVALID);
});

t.test('a tampered or missing MAC is refused', async (t) => {
  const signer = new GrantSigner({ key: KEY, clock: fakeClock() });
  const credential = signer.issue(grant());
  const [prefix, body, mac = ''] = credential.split('.');
  const flipped = mac.startsWith('A') ? `B${mac.slice(1)}` : `A${mac.slice(1)}`;

  t.throws(
    () => signer.verify(`${prefix}.${body}.${flipped}`, 'compute'),
    INVALID,
  );
  t.throws(() => signer.verify(`${prefix}.${body}.`, 'compute'), INVALID);
  t.throws(() => signer.verify(`${prefix}.${body}`, 'compute'), INVALID);
});

t.test('a MAC from another key is refused', async (t) => {
  const signer = new GrantSigner({ key: KEY, clock: fakeClock() });
  const stranger = new GrantSigner({ key: 'x'.repeat(32), clock: fakeClock() });
  const forged = stranger.issue(grant());

  t.throws(() => signer.verify(forged, 'compute'), INVALID, 'unknown key id');
  const sameKid = withPayload(forged, (p) => (p.k = keyId(KEY)));
  t.throws(() => signer.verify(sameKid, 'compute'), INVALID, 'bad MAC');
});

t.test('malformed credentials are refused', async (t) => {
  const signer = new GrantSigner({ key: KEY, clock: fakeClock() });
  const mac = 'A'.repeat(43);
  const b64 = (s: string) => Buffer.from(s).toString('base64url');
  const cases = [
    '',
    'pgr1',
    'cashuBabc',
    `pgr2.${b64('{}')}.${mac}`,
    `pgr1.${b64('not json')}.${mac}`,
    `pgr1.${b64('[1,2]')}.${mac}`,
    `pgr1.${b64('{"k":"00000000"}')}.${mac}`,
    `pgr1.a+b.${mac}`,
    `pgr1.${'A'.repeat(2000)}.${mac}`,
  ];
  for (const credential of cases) {
    t.throws(
      () => signer.verify(credential, 'compute'),
      INVALID,
      credential.slice(0, 20),
    );
  }
});

t.test('a valid grant for another route is a scope error', async (t) => {
  const signer = new GrantSigner({ key: KEY, clock: fakeClock() });
  const credential = signer.issue(grant({ route: 'compute' }));
  t.throws(() => signer.verify(credential, 'premium'), SCOPE);
});

t.test('rotation: old grants pass while the old key is listed', async (t) => {
  const clock = fakeClock();
  const before = new GrantSigner({ key: OLD, clock });
  const credential = before.issue(grant());

  const rotated = new GrantSigner({ key: KEY, previousKeys: [OLD], clock });
  t.equal(rotated.verify(credential, 'compute').route, 'compute');
  const fresh = rotated.issue(grant());
  t.equal(
    JSON.parse(Buffer.from(fresh.split('.')[1]!, 'base64url').toString()).k,
    keyId(KEY),
    'new grants use the new key',
  );
  t.throws(() => before.verify(fresh, 'compute'), INVALID);

  const retired = new GrantSigner({ key: KEY, clock });
  t.throws(() => retired.verify(credential, 'compute'), INVALID);
});

t.test('two signers sharing a key accept each other’s grants', async (t) => {
  const one = new GrantSigner({ key: KEY, clock: fakeClock() });
  const two = new GrantSigner({
    key: KEY,
    previousKeys: [OLD],
    clock: fakeClock(),
  });
  const g = grant();
  t.same(two.verify(one.issue(g), 'compute'), g);
  t.same(one.verify(two.issue(g), 'compute'), g);
});

t.test('keys shorter than 32 bytes are refused', async (t) => {
  t.throws(() => new GrantSigner({ key: 'short' }), TypeError);
  t.throws(
    () => new GrantSigner({ key: KEY, previousKeys: ['short'] }),
    TypeError,
  );
});

t.test('a top-up extends from the current expiry', async (t) => {
  const g = grant({ expiresAt: T0 + 60_000, amount: 10 });
  const now = T0 + 30_000;

  const extended = extendGrant(g, 120, 3600, now, 20);
  t.equal(extended.expiresAt, T0 + 180_000);
  t.equal(extended.amount, 30);
  t.equal(extended.id, g.id, 'same grant, same pod');
  t.equal(g.expiresAt, T0 + 60_000, 'original untouched');
});

t.test('a top-up is capped at maxSeconds from now', async (t) => {
  const g = grant({ expiresAt: T0 + 3_000_000 });
  const extended = extendGrant(g, 3600, 3600, T0);
  t.equal(extended.expiresAt, T0 + 3_600_000);
});

t.test('a top-up of a lapsed grant starts from now', async (t) => {
  const g = grant({ expiresAt: T0 });
  t.equal(extendGrant(g, 60, 3600, T0 + 500_000).expiresAt, T0 + 560_000);
});

t.test('a top-up never shortens a grant', async (t) => {
  const g = grant({ expiresAt: T0 + 7_200_000 });
  t.equal(extendGrant(g, 60, 3600, T0).expiresAt, T0 + 7_200_000);
});

/** The credential's value alone. */
const credentialOf = (...args: Parameters<typeof readGrantCredential>) =>
  readGrantCredential(...args)?.values[0];

t.test('readGrantCredential finds bearer grants and cookies', async (t) => {
  const cred = 'pgr1.abc.def';

  t.equal(credentialOf({ authorization: `Bearer ${cred}` }, 'pg'), cred);
  t.equal(credentialOf({ authorization: `bEaReR   ${cred} ` }, 'pg'), cred);
  t.equal(credentialOf({ cookie: `a=1; pg=${cred}; b=2` }, 'pg'), cred);
  t.equal(credentialOf({ cookie: `pg="${cred}"` }, 'pg'), cred);
  t.equal(
    credentialOf(
      { authorization: 'Bearer pgr1.x.y', cookie: `pg=${cred}` },
      'pg',
    ),
    'pgr1.x.y',
    'the header wins',
  );
  t.equal(
    credentialOf(
      { authorization: 'Bearer cashuBo2F0gaJhaUgA', cookie: `pg=${cred}` },
      'pg',
    ),
    cred,
    'a Cashu token is not a grant',
  );
  t.equal(
    credentialOf({ authorization: 'Bearer cashuBo2F0' }, 'pg'),
    undefined,
  );
  t.equal(credentialOf({ authorization: `Basic ${cred}` }, 'pg'), undefined);
  t.equal(credentialOf({ cookie: `xpg=${cred}` }, 'pg'), undefined);
  t.equal(credentialOf({ cookie: 'pg=other' }, 'pg'), undefined);
  t.equal(credentialOf({}, 'pg'), undefined);
  t.same(readGrantCredential({ authorization: `Bearer ${cred}` }, 'pg'), {
    values: [cred],
    cookie: false,
  });
  t.same(
    readGrantCredential({ cookie: `pg=${cred}` }, 'pg'),
    { values: [cred], cookie: true },
    'a cookie says so',
  );
  t.same(
    readGrantCredential(
      { cookie: `pg=pgr1.other.x; a=1; pg=${cred}; pg=not-a-grant` },
      'pg',
    ),
    { values: ['pgr1.other.x', cred], cookie: true },
    'every cookie of the name, in order',
  );
});

t.test(
  'over https the grant cookie is __Host- only, and the plain name serves credentials issued before',
  async (t) => {
    const signer = new GrantSigner({ key: KEY, clock: fakeClock() });
    const mine = signer.issue(grant());
    const planted = signer.issue(grant());
    const older = asIssuedBeforeHostCookies(signer.issue(grant()), KEY);
    const predates = (c: string) => signer.predatesHostCookies(c);

    t.ok(signer.predatesHostCookies(older));
    t.notOk(signer.predatesHostCookies(mine), 'issued now: marked');
    t.notOk(signer.predatesHostCookies('pgr1.@@.x'), 'not a payload');
    t.notOk(signer.predatesHostCookies(`pgr1.${'A'.repeat(2000)}.x`));
    t.ok(signer.tryAuthentic(older), 'an older credential still verifies');

    t.same(
      readGrantCredential(
        { cookie: `pg=${planted}; __Host-pg=${mine}` },
        'pg',
        true,
        predates,
      ),
      { values: [mine], cookie: true },
      'a plain-name cookie issued since is not read over https',
    );
    t.same(
      readGrantCredential({ cookie: `pg=${planted}` }, 'pg', true, predates),
      undefined,
      'nor on its own',
    );
    t.same(
      readGrantCredential(
        { cookie: `pg=${older}; __Host-pg=${mine}` },
        'pg',
        true,
        predates,
      ),
      { values: [mine, older], cookie: true },
      'an older one is, after the __Host- ones',
    );
    t.same(
      readGrantCredential({ cookie: `pg=${older}` }, 'pg', true),
      undefined,
      'without the test, none of the plain name',
    );
    t.same(
      readGrantCredential(
        { cookie: `__Host-pg=${mine}; pg=${planted}` },
        'pg',
        false,
        predates,
      ),
      { values: [planted], cookie: true },
      'over http the plain name only',
    );
    t.same(
      readGrantCredential(
        { authorization: `Bearer ${planted}`, cookie: `__Host-pg=${mine}` },
        'pg',
        true,
        predates,
      ),
      { values: [planted], cookie: false },
      'the header is not a cookie',
    );
  },
);

t.test(
  'readGrantCredential takes spaces and tabs around a grant, nothing else',
  async (t) => {
    const cred = `pgr1.${'x'.repeat(20)}`;
    t.equal(credentialOf({ authorization: `\tBearer\t${cred}\t` }, 'pg'), cred);
    // Nothing else: a no-break space is not in nginx's `\s`, which the
    // shipped filters use, so a grant read past one would reach the
    // application; the rest is not whitespace in a header either.
    for (const odd of ['\u00a0', '\u0085', '\f', '\v']) {
      const shown = JSON.stringify(odd);
      t.equal(
        credentialOf({ authorization: `Bearer${odd}${cred}` }, 'pg'),
        undefined,
        `Bearer${shown}`,
      );
      t.equal(
        credentialOf({ authorization: `${odd}Bearer ${cred}` }, 'pg'),
        undefined,
        `${shown}Bearer`,
      );
      t.equal(
        findToken({ authorization: `${odd}Bearer cashuBxyz` }),
        undefined,
        `token after ${shown}`,
      );
    }
  },
);
