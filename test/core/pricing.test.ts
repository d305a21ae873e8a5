import t from 'tap';
import fc from 'fast-check';
import type { AuthRequest } from '../../src/core/model.ts';
import type { PaygressError } from '../../src/core/errors.ts';
import {
  Pricing,
  canonicalPath,
  pathReadings,
  grantDuration,
  minimumPayment,
  type Charge,
  type PricingRule,
} from '../../src/core/pricing.ts';

const INTERNAL = { code: 'PAYGRESS_INTERNAL', fault: 'ours' };
const MINTS = [
  { url: 'https://a.example', units: ['sat'] },
  { url: 'https://b.example', units: ['sat', 'usd'] },
];
const DEFAULT = { amount: 1000, unit: 'sat' };
const RATE: Charge = {
  kind: 'rate',
  amount: 10,
  unit: 'sat',
  perSeconds: 60,
  minSeconds: 60,
  maxSeconds: 3600,
};

const RULES: PricingRule[] = [
  {
    name: 'health',
    match: { path: '/public', pathMatch: 'prefix' },
    charge: { kind: 'free' },
  },
  {
    name: 'premium',
    match: {
      host: 'api.example.com',
      path: '/premium',
      pathMatch: 'prefix',
      methods: ['GET', 'POST'],
    },
    charge: { kind: 'request', amount: 50, unit: 'sat' },
  },
  {
    name: 'tenant',
    match: { host: '*.tenants.example.com', pathMatch: 'prefix' },
    charge: { kind: 'request', amount: 3, unit: 'usd' },
  },
  {
    name: 'compute',
    match: { path: '/compute/*', pathMatch: 'glob' },
    charge: RATE,
  },
  {
    name: 'files',
    match: { path: '/files/**/raw', pathMatch: 'glob' },
    charge: { kind: 'request', amount: 2, unit: 'sat' },
  },
  {
    name: 'exact',
    match: { path: '/only', pathMatch: 'exact' },
    charge: { kind: 'request', amount: 4, unit: 'sat' },
  },
  {
    name: 'anything-premium',
    match: { path: '/premium', pathMatch: 'prefix' },
    charge: { kind: 'request', amount: 9, unit: 'sat' },
  },
];

function request(fields: Partial<AuthRequest>): AuthRequest {
  return {
    protocol: 'forward',
    method: 'GET',
    scheme: 'https',
    host: 'api.example.com',
    path: '/',
    query: '',
    headers: {},
    clientAddress: '127.0.0.1',
    requestId: 'r1',
    ...fields,
  };
}

/** Pricing with one rule and the default price. */
function onlyRule(rule: PricingRule): Pricing {
  return new Pricing([rule], DEFAULT, {
    trustedAmountHeader: false,
    mints: MINTS,
  });
}

function routeOf(fields: Partial<AuthRequest>, trusted = false): string {
  const pricing = new Pricing(RULES, DEFAULT, {
    trustedAmountHeader: trusted,
    mints: MINTS,
  });
  return pricing.route(request(fields)).name;
}

t.test('the first matching rule wins; no match is the default', async (t) => {
  const pricing = new Pricing(RULES, DEFAULT, {
    trustedAmountHeader: false,
    mints: MINTS,
  });

  const premium = pricing.route(request({ path: '/premium/report' }));
  t.same(premium, {
    name: 'premium',
    charge: { kind: 'request', amount: 50, unit: 'sat' },
    mints: ['https://a.example', 'https://b.example'],
  });
  t.equal(
    routeOf({ host: 'other.example.com', path: '/premium' }),
    'anything-premium',
  );
  t.same(pricing.route(request({ path: '/elsewhere' })), {
    name: 'default',
    charge: { kind: 'request', amount: 1000, unit: 'sat' },
    mints: ['https://a.example', 'https://b.example'],
  });
});

t.test('free routes cost nothing and name no mint', async (t) => {
  const pricing = new Pricing(RULES, DEFAULT, {
    trustedAmountHeader: false,
    mints: MINTS,
  });
  t.same(pricing.route(request({ path: '/public/status' })), {
    name: 'health',
    charge: { kind: 'free' },
    mints: [],
  });
});

t.test('a rule with methods applies to those methods only', async (t) => {
  t.equal(routeOf({ method: 'POST', path: '/premium' }), 'premium');
  t.equal(routeOf({ method: 'DELETE', path: '/premium' }), 'anything-premium');
});

t.test('host match is exact, case-insensitive, or a *. wildcard', async (t) => {
  t.equal(routeOf({ host: 'API.Example.COM', path: '/premium' }), 'premium');
  t.equal(routeOf({ host: 'api.example.com.', path: '/premium' }), 'premium');
  t.equal(
    routeOf({ host: 'xapi.example.com', path: '/premium' }),
    'anything-premium',
  );

  t.equal(routeOf({ host: 'a.tenants.example.com' }), 'tenant');
  t.equal(routeOf({ host: 'a.b.tenants.example.com' }), 'tenant');
  t.equal(
    routeOf({ host: 'tenants.example.com' }),
    'default',
    'apex is not a subdomain',
  );
  t.equal(routeOf({ host: 'eviltenants.example.com' }), 'default');
});

t.test('tenant routes pay in usd at the mints offering usd', async (t) => {
  const pricing = new Pricing(RULES, DEFAULT, {
    trustedAmountHeader: false,
    mints: MINTS,
  });
  t.same(pricing.route(request({ host: 'a.tenants.example.com' })).mints, [
    'https://b.example',
  ]);
});

t.test('prefix matching stops at segment boundaries', async (t) => {
  t.equal(routeOf({ path: '/premium' }), 'premium');
  t.equal(routeOf({ path: '/premium/' }), 'premium');
  t.equal(routeOf({ path: '/premium/x/y' }), 'premium');
  t.equal(routeOf({ path: '/premium-plus' }), 'default');
  t.equal(routeOf({ path: '/publicity' }), 'default');
});

t.test('exact matching matches one path only', async (t) => {
  t.equal(routeOf({ path: '/only' }), 'exact');
  t.equal(routeOf({ path: '/only/x' }), 'default');
});

t.test('glob * is one segment and ** any depth', async (t) => {
  t.equal(routeOf({ path: '/compute/job1' }), 'compute');
  t.equal(routeOf({ path: '/compute/job1/' }), 'compute');
  t.equal(routeOf({ path: '/compute' }), 'default');
  t.equal(routeOf({ path: '/compute/job1/logs' }), 'default');

  t.equal(routeOf({ path: '/files/raw' }), 'files');
  t.equal(routeOf({ path: '/files/a/b/c/raw' }), 'files');
  t.equal(routeOf({ path: '/files/a/b/c/cooked' }), 'default');
});

t.test(
  'a path with dot segments is refused, whatever it resolves to',
  async (t) => {
    // nginx resolves them, most application routers do not and get the path
    // as sent: /premium/../public/x is /public to one, /premium to another.
    for (const path of [
      '/public/../premium',
      '/public/%2E%2E/premium',
      '/premium/../public/x',
      '/premium/%2e%2e/public/x',
      '/premium/./x',
      '/premium/.;/x',
      '/../../premium',
      '/x/.',
      '/api/..\\premium',
    ]) {
      t.same(pathReadings(path), undefined, path);
      t.throws(() => routeOf({ path }), { code: 'PAYGRESS_REQUEST_AMBIGUOUS' });
    }
    // Methods are case-sensitive: Go servers see `get` as another method
    // than `GET`, werkzeug upper-cases it. Neither reading is priced.
    for (const method of ['get', 'Post', 'gEt']) {
      t.throws(() => routeOf({ method, path: '/public' }), {
        code: 'PAYGRESS_REQUEST_AMBIGUOUS',
        message: /method/,
      });
    }
    // nginx passes a raw `#` on; Go's servers keep it in the path and
    // resolve what follows, WHATWG parsers end the path there.
    for (const path of ['/public#/../premium', '/premium#x', '/#']) {
      t.throws(() => routeOf({ path }), {
        code: 'PAYGRESS_REQUEST_AMBIGUOUS',
        message: /raw #/,
      });
    }
    t.same(
      pathReadings('/.well-known/x'),
      ['/.well-known/x'],
      'dots in a name',
    );
    t.same(pathReadings('/a...b/c'), ['/a...b/c']);
    t.equal(canonicalPath('//premium//x/'), '/premium/x/');
  },
);

t.test(
  'encodings and path parameters cannot buy a priced path cheaper',
  async (t) => {
    const outcome = (path: string) => {
      try {
        return routeOf({ path });
      } catch (err) {
        return (err as { code: string }).code;
      }
    };
    // Read the same by every proxy and server: priced as /premium.
    for (const path of [
      '/%70remium',
      '/%70%72%65%6D%69%75%6D/x',
      '/premium/..%3b/public',
      '/premium/%2e%2e%3b/public',
    ]) {
      t.equal(outcome(path), 'premium', path);
    }
    // Read as /premium by some and as another route by others (nginx
    // serves `/premium;x` from `location /premium`, a servlet container
    // serves /x for `/premium/..;/x`, nginx decodes `%2F`): refused.
    for (const path of [
      '/premium;x',
      '/premium;jsessionid=1/x',
      '/public/..;/premium',
      '/premium/..;/x',
      '/premium/x%2f..%2f..%2fy',
      '/public%2F..%2Fpremium',
      '/public;/../premium',
      '/premium\\x',
      '/premium%5Cx',
    ]) {
      t.equal(outcome(path), 'PAYGRESS_REQUEST_AMBIGUOUS', path);
    }
    t.same(pathReadings('/a%2Fb/%70'), ['/a%2Fb/p', '/a/b/p']);
    t.same(pathReadings('/premium\\x'), ['/premium\\x', '/premium/x']);
    t.equal(
      canonicalPath('/a%zz/%ff%41/pr%C3%A9mium'),
      '/a%zz/\uFFFDA/prémium',
      'escapes decoded byte by byte; a bad one spoils only itself',
    );

    // Parameters make a path ambiguous: never free, priced by the rest.
    t.equal(outcome('/public;x'), 'default');
    t.equal(outcome('/public'), 'health');
  },
);

t.test('rule paths are read as request paths are', async (t) => {
  const pricing = onlyRule({
    name: 'reports',
    match: { path: '/reports%20v2', pathMatch: 'prefix' },
    charge: { kind: 'request', amount: 9, unit: 'sat' },
  });
  for (const path of ['/reports%20v2/x', '/reports v2', '/reports%20%76%32']) {
    t.equal(pricing.route(request({ path })).name, 'reports', path);
  }
});

t.test(
  'a non-ASCII rule path matches however the request spells it',
  async (t) => {
    const pricing = onlyRule({
      name: 'premium',
      match: { path: '/prémium', pathMatch: 'prefix' },
      charge: { kind: 'request', amount: 100, unit: 'sat' },
    });
    for (const path of [
      '/prémium/x',
      '/pr%C3%A9mium/x',
      '/pr%C3%A9mium/x%ff',
    ]) {
      t.equal(pricing.route(request({ path })).name, 'premium', path);
    }
  },
);

t.test('glob matching agrees with a plain recursive search', async (t) => {
  const reference = (want: string[], got: string[]): boolean => {
    if (want.length === 0) return got.length === 0;
    const [head, ...rest] = want;
    if (head === '**') {
      return (
        got.some((_, i) => reference(rest, got.slice(i))) || reference(rest, [])
      );
    }
    return (
      got.length > 0 &&
      (head === '*' || head === got[0]) &&
      reference(rest, got.slice(1))
    );
  };
  const part = fc.constantFrom('a', 'b', '*', '**');
  const seg = fc.constantFrom('a', 'b', 'c');
  fc.assert(
    fc.property(
      fc.array(part, { minLength: 1, maxLength: 6 }),
      fc.array(seg, { maxLength: 8 }),
      (want, got) => {
        const pricing = onlyRule({
          name: 'glob',
          match: { path: `/${want.join('/')}`, pathMatch: 'glob' },
          charge: { kind: 'request', amount: 1, unit: 'sat' },
        });
        const path = `/${got.join('/')}`;
        const matched = pricing.route(request({ path })).name === 'glob';
        return matched === reference(want, got);
      },
    ),
    { numRuns: 2000 },
  );
  t.pass('2,000 pattern and path pairs agree');
});

t.test('a long path against many ** is matched in time', async (t) => {
  const pricing = onlyRule({
    name: 'reports',
    match: { path: '/**/reports/**/2024/**/pdf', pathMatch: 'glob' },
    charge: { kind: 'request', amount: 1, unit: 'sat' },
  });
  // A recursive search took minutes on this; the match is linear per `**`.
  const long = '/x'.repeat(5000);
  t.equal(pricing.route(request({ path: long })).name, 'default');
  t.equal(
    pricing.route(request({ path: `${long}/reports${long}/2024${long}/pdf` }))
      .name,
    'reports',
  );
});

t.test('X-Required-Amount is ignored unless trusted', async (t) => {
  const pricing = new Pricing(RULES, DEFAULT, {
    trustedAmountHeader: false,
    mints: MINTS,
  });
  const route = pricing.route(
    request({ path: '/premium', headers: { 'x-required-amount': '1' } }),
  );
  t.same(route.charge, { kind: 'request', amount: 50, unit: 'sat' });
});

t.test('a trusted X-Required-Amount replaces the price', async (t) => {
  const pricing = new Pricing(RULES, DEFAULT, {
    trustedAmountHeader: true,
    mints: MINTS,
  });
  const at = (headers: Record<string, string>, path = '/premium') =>
    pricing.route(request({ path, headers }));

  t.same(at({ 'x-required-amount': '25' }), {
    name: 'premium',
    charge: { kind: 'request', amount: 25, unit: 'sat' },
    mints: ['https://a.example', 'https://b.example'],
  });
  t.same(at({ 'x-required-amount': '7', 'x-required-unit': 'usd' }), {
    name: 'premium',
    charge: { kind: 'request', amount: 7, unit: 'usd' },
    mints: ['https://b.example'],
  });
  t.same(at({}).charge, { kind: 'request', amount: 50, unit: 'sat' });
  t.same(at({ 'x-required-amount': '5' }, '/nowhere').charge, {
    kind: 'request',
    amount: 5,
    unit: 'sat',
  });
  t.same(at({ 'x-required-amount': '5' }, '/public').charge, { kind: 'free' });
  t.same(at({ 'x-required-amount': '5' }, '/compute/x').charge, RATE);
});

t.test(
  'an unusable trusted X-Required-Amount is our fault, never free',
  async (t) => {
    const pricing = new Pricing(RULES, DEFAULT, {
      trustedAmountHeader: true,
      mints: MINTS,
    });
    const at = (headers: Record<string, string>) => () =>
      pricing.route(request({ path: '/premium', headers }));

    for (const bad of [
      '0',
      '-5',
      '1.5',
      'ten',
      '',
      '1e3',
      '99999999999999999',
    ]) {
      t.throws(at({ 'x-required-amount': bad }), INTERNAL, `"${bad}"`);
    }
    t.throws(
      at({ 'x-required-amount': '5', 'x-required-unit': 'eur' }),
      INTERNAL,
      'a unit no mint offers',
    );
    const err = t.throws(at({ 'x-required-amount': 'x' })) as PaygressError;
    t.equal(err.fault, 'ours');
  },
);

t.test('grantDuration buys time at the rate, clamped', async (t) => {
  t.equal(grantDuration(RATE, 10), 60);
  t.equal(grantDuration(RATE, 15), 90);
  t.equal(grantDuration(RATE, 17), 102, 'rounds down');
  t.equal(grantDuration(RATE, 600), 3600);
  t.equal(grantDuration(RATE, 1_000_000), 3600, 'capped at maxSeconds');

  t.throws(() => grantDuration(RATE, 9), {
    code: 'PAYGRESS_INSUFFICIENT_AMOUNT',
  });
  t.throws(() => grantDuration({ kind: 'free' }, 10), TypeError);
});

t.test('a minimum above one period clamps up from the rate', async (t) => {
  const charge: Charge = { ...RATE, minSeconds: 90, maxSeconds: 120 };
  t.equal(minimumPayment(charge), 15);
  t.equal(grantDuration(charge, 15), 90);
  t.equal(grantDuration(charge, 30), 120);
});

t.test('minimumPayment is what the smallest purchase costs', async (t) => {
  t.equal(minimumPayment({ kind: 'free' }), 0);
  t.equal(minimumPayment({ kind: 'request', amount: 7, unit: 'sat' }), 7);
  t.equal(minimumPayment(RATE), 10);
  t.equal(
    minimumPayment({ ...RATE, amount: 1, perSeconds: 60, minSeconds: 1 }),
    1,
    'rounds up',
  );
  const odd: Charge = { ...RATE, amount: 7, perSeconds: 60, minSeconds: 50 };
  t.equal(minimumPayment(odd), 6);
  t.ok(grantDuration(odd, minimumPayment(odd)) >= 50);
});
