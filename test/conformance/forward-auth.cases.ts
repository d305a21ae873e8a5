/**
 * Forward-auth as Caddy and Traefik speak it. Real Caddy 2.6 runs
 * deploy/caddy/Caddyfile (ports filled in) in front of a recording
 * upstream and a whole Paygress: a deny reaches the client exactly as
 * Paygress wrote it, an allow puts real payment headers on the upstream
 * request, and the original method and URI are what gets priced. Traefik
 * cannot run here, so a client sends exactly what Traefik's forwardAuth
 * sends, and deploy/traefik's Middleware is checked field by field.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { startProbeStack } from '../support/probe-rules.ts';
import { connect } from 'node:net';
import { decodePaymentRequest } from '@cashu/cashu-ts';
import { parse } from 'yaml';
import { mintToken } from '../support/wallet.ts';
import { renderTemplate } from '../support/nginx.ts';
import { startCaddy } from '../support/caddy.ts';
import { UPSTREAM_BODY, freePort } from '../support/recording-upstream.ts';

const DEPLOY = fileURLToPath(new URL('../../deploy/', import.meta.url));
const PAYMENT_HEADERS = [
  'x-payment-verified',
  'x-payment-amount',
  'x-payment-unit',
  'x-user-id',
  'x-provisioned-pod',
];

// POST /premium costs 7 sat, /public is free, everything else 100 sat: the
// price a client is asked shows which request Paygress believed it saw.
const { stack, upstream } = await startProbeStack(t);

const caddyPort = await freePort();
const caddy = await startCaddy(
  renderTemplate(join(DEPLOY, 'caddy/Caddyfile'), {
    BIND_ADDRESS: '127.0.0.1',
    LISTEN_PORT: caddyPort,
    PAYGRESS_PORT: stack.app.httpPort,
    UPSTREAM_PORT: upstream.port,
  }),
  [caddyPort],
);
t.teardown(() => caddy.stop());
const viaCaddy = `http://127.0.0.1:${caddyPort}`;

/**
 * What Traefik's forwardAuth sends for a client request, with
 * trustForwardHeader: false: the client's headers minus its own
 * X-Forwarded-*, then Traefik's X-Forwarded-*, as a GET without a body.
 */
function traefikAsks(
  target: { method: string; uri: string },
  clientHeaders: Record<string, string> = {},
): Promise<Response> {
  const kept = Object.entries(clientHeaders).filter(
    ([name]) => !name.toLowerCase().startsWith('x-forwarded-'),
  );
  return fetch(`${stack.base}/auth/forward`, {
    headers: {
      ...Object.fromEntries(kept),
      'X-Forwarded-Method': target.method,
      'X-Forwarded-Proto': 'https',
      'X-Forwarded-Host': 'app.example.com',
      'X-Forwarded-Uri': target.uri,
      'X-Forwarded-For': '203.0.113.7',
    },
  });
}

t.test('Caddy: a deny reaches the client byte for byte', async (t) => {
  const before = upstream.requests.length;
  const res = await fetch(`${viaCaddy}/premium`);
  const body = await res.text();
  const direct = await fetch(`${stack.base}/auth/forward`, {
    headers: {
      'X-Forwarded-Method': 'GET',
      'X-Forwarded-Proto': 'http',
      'X-Forwarded-Host': `127.0.0.1:${caddyPort}`,
      'X-Forwarded-Uri': '/premium',
    },
  });
  const directBody = await direct.text();

  t.equal(res.status, 402);
  t.equal(body, directBody, 'the JSON body Paygress wrote');
  for (const name of [
    'x-cashu',
    'x-paygress-reason',
    'x-payment-amount',
    'x-payment-unit',
    'content-type',
    'cache-control',
    'content-length',
  ]) {
    t.equal(res.headers.get(name), direct.headers.get(name), name);
  }
  t.match(res.headers.get('x-cashu'), /^creqA/);
  t.match(JSON.parse(body), {
    reason: 'PAYGRESS_PAYMENT_REQUIRED',
    amount: 100,
  });
  t.equal(upstream.requests.length, before, 'the upstream was not reached');
});

t.test(
  'Caddy: an allow puts real payment headers on the upstream request',
  async (t) => {
    const forged = {
      'X-Payment-Verified': 'true',
      'X-Payment-Amount': '999999',
      'X-User-ID': 'forged-user',
      'X-Provisioned-Pod': 'forged-pod',
      // What CGI, FastCGI and WSGI read as the same names.
      X_Payment_Verified: 'true',
      'X-Payment_Amount': '999999',
      'X_Payment-Unit': 'msat',
      'X-User_ID': 'forged-user',
      X_Provisioned_Pod: 'forged-pod',
    };
    for (let i = 0; i < 3; i++) {
      const token = await mintToken(stack.mint.url, 100);
      const res = await fetch(`${viaCaddy}/premium`, {
        headers: { ...forged, 'X-Cashu': token },
      });

      t.equal(res.status, 200);
      t.equal(await res.text(), UPSTREAM_BODY);
      const seen = upstream.last()!.headers;
      for (const name of PAYMENT_HEADERS) {
        t.type(seen[name], 'string', `${name} present`);
        t.notMatch(seen[name], /[{}]/, `${name} is not a placeholder`);
      }
      t.equal(seen['x-payment-verified'], 'true');
      t.equal(seen['x-payment-amount'], '100', "Paygress's, not the client's");
      t.equal(seen['x-cashu'], undefined, 'the token stays out');
      t.equal(seen['x-payment-unit'], 'sat');
      t.match(seen['x-user-id'], /^[A-Za-z0-9_-]{22}$/);
      t.not(seen['x-provisioned-pod'], 'forged-pod');
      t.same(
        Object.keys(seen).filter((name) => name.includes('_')),
        [],
        'no spelling with _ reaches the application',
      );
    }
  },
);

t.test('Caddy: the original method and URI are priced', async (t) => {
  const unpaid = await fetch(`${viaCaddy}/premium?x=1`, {
    method: 'POST',
    body: 'payload',
    headers: { 'X-Forwarded-Uri': '/public', 'X-Forwarded-Method': 'GET' },
  });
  const cashu = unpaid.headers.get('x-cashu') ?? '';
  await unpaid.arrayBuffer();
  t.equal(unpaid.status, 402, 'forged X-Forwarded-* did not make it free');
  t.equal(decodePaymentRequest(cashu).amount?.toNumber(), 7, 'POST /premium');

  const token = await mintToken(stack.mint.url, 7);
  const paid = await fetch(`${viaCaddy}/premium?x=1`, {
    method: 'POST',
    body: 'payload',
    headers: { 'X-Cashu': token },
  });
  await paid.arrayBuffer();
  t.equal(paid.status, 200);
  const seen = upstream.last()!;
  t.equal(seen.method, 'POST');
  t.equal(seen.url, '/premium?x=1');
  t.equal(seen.bodyBytes, 'payload'.length);
  t.equal(seen.headers['x-payment-amount'], '7');

  const free = await fetch(`${viaCaddy}/public/page`);
  await free.arrayBuffer();
  t.equal(free.status, 200, 'a free route passes without a token');
});

t.test('Caddy: a method not in upper case is refused', async (t) => {
  // Caddy passes `get` on as it came. Go servers take it for another
  // method than GET, werkzeug upper-cases it: priced as either, it could
  // be served as the other.
  const seen = upstream.requests.length;
  const head = await new Promise<string>((resolve, reject) => {
    const socket = connect(caddyPort, '127.0.0.1');
    let data = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (data += chunk));
    socket.on('end', () => resolve(data));
    socket.on('error', reject);
    socket.write(
      'get /public/page HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    );
  });
  t.match(head, /^HTTP\/1\.1 402 /);
  t.match(head, /X-Paygress-Reason: PAYGRESS_REQUEST_AMBIGUOUS/i);
  t.equal(upstream.requests.length, seen, 'the application got nothing');
});

t.test('Traefik: its forwardAuth request gets the same answers', async (t) => {
  const deny = await traefikAsks({ method: 'GET', uri: '/premium' });
  const denyBody = await deny.text();
  t.equal(deny.status, 402);
  t.match(deny.headers.get('x-cashu'), /^creqA/);
  t.match(deny.headers.get('content-type'), /^application\/json/);
  t.match(JSON.parse(denyBody), {
    error: 'payment_required',
    reason: 'PAYGRESS_PAYMENT_REQUIRED',
    amount: 100,
    unit: 'sat',
    mints: [stack.mint.url],
    paymentRequest: deny.headers.get('x-cashu'),
  });

  const post = await traefikAsks(
    { method: 'POST', uri: '/premium?x=1' },
    { 'X-Forwarded-Uri': '/public', 'X-Forwarded-Method': 'GET' },
  );
  const postCashu = post.headers.get('x-cashu') ?? '';
  await post.arrayBuffer();
  t.equal(post.status, 402);
  t.equal(decodePaymentRequest(postCashu).amount?.toNumber(), 7);

  const token = await mintToken(stack.mint.url, 100);
  const allow = await traefikAsks(
    { method: 'GET', uri: '/premium' },
    { 'X-Cashu': token },
  );
  t.equal(allow.status, 200);
  t.equal(await allow.text(), '');
  for (const name of PAYMENT_HEADERS) {
    t.type(allow.headers.get(name), 'string', `${name} sent`);
  }
  t.equal(allow.headers.get('x-payment-verified'), 'true');
  t.equal(allow.headers.get('x-payment-amount'), '100');

  const replay = await traefikAsks(
    { method: 'GET', uri: '/premium' },
    { 'X-Cashu': token },
  );
  await replay.arrayBuffer();
  t.equal(replay.status, 402);
  t.equal(replay.headers.get('x-paygress-reason'), 'PAYGRESS_TOKEN_REPLAYED');
});

t.test(
  'Traefik: the shipped Middleware has the fields Paygress needs',
  async (t) => {
    const doc = parse(
      readFileSync(join(DEPLOY, 'traefik/middleware.yaml'), 'utf8'),
    );
    t.equal(doc.apiVersion, 'traefik.io/v1alpha1');
    t.equal(doc.kind, 'Middleware');
    const auth = doc.spec.forwardAuth;
    // The sidecar patch moves Paygress off 8080 (Traefik's own entry
    // point); the Middleware must call the port the patch sets.
    const patch = readFileSync(
      join(DEPLOY, 'traefik/deployment-patch.yaml'),
      'utf8',
    );
    const port = /PAYGRESS_HTTP_PORT\s+value: '(\d+)'/.exec(patch)?.[1];
    t.equal(port, '8081');
    t.equal(auth.address, `http://127.0.0.1:${port}/auth/forward`);
    t.equal(auth.trustForwardHeader, false);
    t.same(
      auth.authResponseHeaders.map((h: string) => h.toLowerCase()),
      [...PAYMENT_HEADERS, 'x-cashu'],
      'the payment headers, and X-Cashu, which Traefik then deletes',
    );
    t.equal(
      auth.authResponseHeadersRegex,
      '_',
      'and every header with _ in its name, which Traefik strips',
    );
    t.same(auth.addAuthCookiesToResponse, [
      '__Host-paygress_grant',
      'paygress_grant',
    ]);

    const route = parse(
      readFileSync(join(DEPLOY, 'traefik/ingressroute.yaml'), 'utf8'),
    );
    t.equal(route.kind, 'IngressRoute');
    t.same(route.spec.routes[0].middlewares, [{ name: doc.metadata.name }]);
  },
);
