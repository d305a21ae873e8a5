/**
 * Plain nginx with `auth_request`, running deploy/nginx/nginx.conf as a
 * user would (only ports filled in) in front of a recording upstream and a
 * whole Paygress: the client sees 402 + X-Cashu, a paid request reaches
 * the application with Paygress's headers and nobody else's, bodies never
 * stall the auth path, and nginx keeps its connections to Paygress alive.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import type { Test } from 'tap';
import {
  createRandomSecretKey,
  decodePaymentRequest,
  getPubKeyFromPrivKey,
} from '@cashu/cashu-ts';
import { ProvisionFailedError } from '../../src/core/errors.ts';
import type { Provisioner } from '../../src/core/ports.ts';
import { startStack } from '../support/stack.ts';
import { decodeToken, mintToken } from '../support/wallet.ts';
import { renderTemplate, startNginx } from '../support/nginx.ts';
import { rawExchange } from '../support/raw-http.ts';
import {
  UPSTREAM_BODY,
  freePort,
  startCountingRelay,
  startRecordingUpstream,
} from '../support/recording-upstream.ts';

const CONFIG = fileURLToPath(
  new URL('../../deploy/nginx/nginx.conf', import.meta.url),
);

const stack = await startStack({ price: 100 });
t.teardown(() => stack.close());
const upstream = await startRecordingUpstream();
t.teardown(() => upstream.close());
const nginx = await nginxFor(stack.app.httpPort);
t.teardown(() => nginx.peer.stop());

/** A provisioner whose every pod fails, as a cluster refusing them. */
const failingPods: Provisioner = {
  ensure: async () => {
    throw new ProvisionFailedError('no pods today');
  },
  extend: async () => {},
  reap: async () => 0,
  release: async () => {},
  podName: (id) => id,
};

/** nginx from the shipped config, pointed at Paygress on `authPort`. */
async function nginxFor(authPort: number) {
  const port = await freePort();
  const config = renderTemplate(CONFIG, {
    LISTEN_PORT: port,
    PAYGRESS_PORT: authPort,
    UPSTREAM_PORT: upstream.port,
  });
  const peer = await startNginx(config, [port]);
  return { peer, url: `http://127.0.0.1:${port}` };
}

t.test(
  'no token: 402 with X-Cashu and a JSON body naming the price',
  async (t) => {
    const before = upstream.requests.length;
    const res = await fetch(`${nginx.url}/premium`);
    const body = await res.text();

    t.equal(res.status, 402);
    const cashu = res.headers.get('x-cashu') ?? '';
    t.match(cashu, /^creqA/);
    t.equal(res.headers.get('x-paygress-reason'), 'PAYGRESS_PAYMENT_REQUIRED');
    t.match(res.headers.get('content-type'), /^application\/json/);
    const json = JSON.parse(body);
    t.match(json, {
      error: 'payment_required',
      reason: 'PAYGRESS_PAYMENT_REQUIRED',
      amount: 100,
      unit: 'sat',
      paymentRequest: cashu,
    });
    const request = decodePaymentRequest(cashu);
    t.equal(request.amount?.toNumber(), 100);
    t.same(request.mints, [stack.mint.url]);
    t.equal(upstream.requests.length, before, 'the upstream was not reached');
  },
);

t.test(
  'a valid token reaches the upstream with the payment headers, once',
  async (t) => {
    const token = await mintToken(stack.mint.url, 100);

    const paid = await fetch(`${nginx.url}/premium?x=1`, {
      headers: { 'X-Cashu': token },
    });
    t.equal(paid.status, 200);
    t.equal(await paid.text(), UPSTREAM_BODY);
    const seen = upstream.last()!;
    t.equal(seen.url, '/premium?x=1');
    t.equal(seen.headers['x-payment-verified'], 'true');
    t.equal(seen.headers['x-payment-amount'], '100');
    t.equal(seen.headers['x-payment-unit'], 'sat');
    t.match(seen.headers['x-user-id'], /^[A-Za-z0-9_-]{22}$/);

    const replay = await fetch(`${nginx.url}/premium?x=1`, {
      headers: { 'X-Cashu': token },
    });
    await replay.arrayBuffer();
    t.equal(replay.status, 402);
    t.equal(replay.headers.get('x-paygress-reason'), 'PAYGRESS_TOKEN_REPLAYED');
    t.match(replay.headers.get('x-cashu'), /^creqA/);
  },
);

t.test('a POST with a body is answered without stalling', async (t) => {
  const body = Buffer.alloc(1024 * 1024, 'a');

  const unpaid = await fetch(`${nginx.url}/upload`, {
    method: 'POST',
    body,
    signal: AbortSignal.timeout(5000),
  });
  await unpaid.arrayBuffer();
  t.equal(unpaid.status, 402, 'refused without waiting for the body');

  const token = await mintToken(stack.mint.url, 100);
  const paid = await fetch(`${nginx.url}/upload`, {
    method: 'POST',
    body,
    headers: { 'X-Cashu': token },
    signal: AbortSignal.timeout(5000),
  });
  await paid.arrayBuffer();
  t.equal(paid.status, 200);
  t.equal(upstream.last()!.method, 'POST');
  t.equal(upstream.last()!.bodyBytes, body.length, 'the body reached the app');
});

t.test("the payment stays out of the application's request", async (t) => {
  const viaHeader = await fetch(`${nginx.url}/premium`, {
    headers: {
      'X-Cashu': await mintToken(stack.mint.url, 100),
      Authorization: 'Basic YXBwOnVzZXI=',
    },
  });
  await viaHeader.arrayBuffer();
  t.equal(viaHeader.status, 200);
  let seen = upstream.last()!.headers;
  t.equal(seen['x-cashu'], undefined, 'no token in X-Cashu');
  t.equal(
    seen['authorization'],
    'Basic YXBwOnVzZXI=',
    "the application's own Authorization passes",
  );

  const viaBearer = await fetch(`${nginx.url}/premium`, {
    headers: {
      Authorization: `Bearer ${await mintToken(stack.mint.url, 100)}`,
    },
  });
  await viaBearer.arrayBuffer();
  t.equal(viaBearer.status, 200);
  seen = upstream.last()!.headers;
  t.equal(seen['authorization'], undefined, 'no token in Authorization');
});

t.test('client-sent payment and forwarded headers fake nothing', async (t) => {
  const forged = {
    'X-Payment-Verified': 'true',
    'X-Payment-Amount': '999999',
    'X-User-ID': 'forged-user',
    'X-Provisioned-Pod': 'forged-pod',
    'X-Forwarded-Uri': '/healthz',
    'X-Forwarded-Method': 'OPTIONS',
    'X-Original-URI': '/healthz',
  };
  const before = upstream.requests.length;

  const unpaid = await fetch(`${nginx.url}/premium`, { headers: forged });
  await unpaid.arrayBuffer();
  t.equal(unpaid.status, 402, 'still payment required');
  t.equal(upstream.requests.length, before, 'the upstream was not reached');

  const token = await mintToken(stack.mint.url, 100);
  const paid = await fetch(`${nginx.url}/premium`, {
    headers: { ...forged, 'X-Cashu': token },
  });
  await paid.arrayBuffer();
  t.equal(paid.status, 200);
  const seen = upstream.last()!.headers;
  t.equal(seen['x-payment-verified'], 'true');
  t.equal(
    seen['x-payment-amount'],
    '100',
    "Paygress's amount, not the client's",
  );
  t.not(seen['x-user-id'], 'forged-user');
  t.match(seen['x-user-id'], /^[A-Za-z0-9_-]{22}$/);
  t.equal(seen['x-provisioned-pod'], undefined, 'empty value, header dropped');
});

t.test(
  'auth response header blocks fit in proxy_buffer_size (4 KiB)',
  async (t) => {
    const deny = await rawHeaderBlock(stack.app.httpPort, {});
    t.match(deny, /^HTTP\/1\.1 401 /);
    t.ok(deny.length < 4096, `deny header block is ${deny.length} bytes`);

    const token = await mintToken(stack.mint.url, 100);
    const allow = await rawHeaderBlock(stack.app.httpPort, {
      'X-Cashu': token,
    });
    t.match(allow, /^HTTP\/1\.1 200 /);
    t.ok(allow.length < 4096, `allow header block is ${allow.length} bytes`);
  },
);

t.test(
  'a refund of 20 proofs after a failed pod reaches the client',
  async (t) => {
    const refunding = await startStack({
      price: 100,
      provisioner: failingPods,
    });
    t.teardown(() => refunding.close());
    const viaNginx = await nginxFor(refunding.app.httpPort);
    t.teardown(() => viaNginx.peer.stop());

    // A refund of 20 proofs, sent twice: over 6 KiB of headers, where
    // nginx's default buffer holds 4.
    const amount = 2 ** 20 - 1;
    const token = await mintToken(refunding.mint.url, amount);
    const block = await rawHeaderBlock(refunding.app.httpPort, {
      'X-Cashu': await mintToken(refunding.mint.url, amount),
    });
    t.ok(block.length > 6144, `refund header block is ${block.length} bytes`);

    const res = await fetch(`${viaNginx.url}/premium`, {
      headers: { 'X-Cashu': token },
    });
    await res.arrayBuffer();
    t.equal(res.status, 402, 'not a 500: the answer fit in the buffer');
    t.equal(res.headers.get('x-paygress-reason'), 'PAYGRESS_PROVISION_FAILED');
    const refund = await decodeToken(
      refunding.mint.url,
      res.headers.get('x-cashu') ?? '',
    );
    t.equal(
      refund.proofs.reduce((n, p) => n + p.amount.toNumber(), 0),
      amount,
      'the whole payment comes back',
    );
  },
);

t.test(
  'a credit after a failed pod reaches the client, header and body',
  async (t) => {
    // With an operator key the proofs cannot be handed back: a failed pod
    // leaves the payment on a single-request grant instead.
    const crediting = await startStack({
      price: 100,
      provisioner: failingPods,
      env: {
        PAYGRESS_OPERATOR_PUBKEY: Buffer.from(
          getPubKeyFromPrivKey(createRandomSecretKey()),
        ).toString('hex'),
      },
    });
    t.teardown(() => crediting.close());
    const viaNginx = await nginxFor(crediting.app.httpPort);
    t.teardown(() => viaNginx.peer.stop());

    const res = await fetch(`${viaNginx.url}/premium`, {
      headers: { 'X-Cashu': await mintToken(crediting.mint.url, 100) },
    });
    const body = JSON.parse(await res.text());
    t.equal(res.status, 402);
    t.equal(res.headers.get('x-paygress-reason'), 'PAYGRESS_PROVISION_FAILED');
    const credit = res.headers.get('x-paygress-grant') ?? '';
    t.match(credit, /^pgr1\./, 'the credit in X-Paygress-Grant');
    t.equal(body.grant, credit, 'and in the body');
  },
);

t.test('nginx reuses its connections to Paygress', async (t) => {
  const relay = await startCountingRelay(stack.app.httpPort);
  t.teardown(() => relay.close());
  const viaRelay = await nginxFor(relay.port);
  t.teardown(() => viaRelay.peer.stop());

  let refused = 0;
  for (let i = 0; i < 1000; i++) {
    const res = await fetch(`${viaRelay.url}/premium?n=${i}`);
    await res.arrayBuffer();
    if (res.status === 402) refused++;
  }
  t.equal(refused, 1000, 'every request was priced');
  t.ok(
    relay.connections() <= 4,
    `${relay.connections()} connections for 1000 auth subrequests`,
  );
});

t.test(
  'why Paygress says 401: nginx turns an auth 402 into a 500',
  async (t) => {
    const naive = createServer((_req, res) => {
      res.writeHead(402, { 'X-Cashu': 'creqAexample', 'Content-Length': 0 });
      res.end();
    });
    await new Promise<void>((r) => naive.listen(0, '127.0.0.1', () => r()));
    t.teardown(() => new Promise<void>((r) => naive.close(() => r())));
    const port = (naive.address() as AddressInfo).port;
    const viaNaive = await nginxFor(port);
    t.teardown(() => viaNaive.peer.stop());

    const res = await fetch(`${viaNaive.url}/premium`);
    await res.arrayBuffer();
    t.equal(res.status, 500);
    t.equal(res.headers.get('x-cashu'), null, 'the payment request is lost');
  },
);

t.test(
  'an encoded or parameterised path pays the price of where nginx sends it',
  async (t) => {
    const configFile = pricingFile(t, [
      '  default: { amount: 10, unit: sat }',
      '  rules:',
      '    - name: public',
      '      match: { path: /public }',
      '      free: true',
      '    - name: premium',
      '      match: { path: /premium }',
      '      price: { amount: 1000, unit: sat }',
    ]);
    const priced = await startStack({
      mint: stack.mint,
      configFile,
      price: 10,
    });
    t.teardown(() => priced.close());
    const proxy = await nginxFor(priced.app.httpPort);
    t.teardown(() => proxy.peer.stop());

    const cheap = await fetch(`${proxy.url}/other`, {
      headers: { 'X-Cashu': await mintToken(stack.mint.url, 10) },
    });
    await cheap.arrayBuffer();
    t.equal(cheap.status, 200, 'the default price is 10');

    const refusals: [string, string][] = [
      ['/%70remium', 'PAYGRESS_INSUFFICIENT_AMOUNT'],
      ['/premium/..%3b/public', 'PAYGRESS_INSUFFICIENT_AMOUNT'],
      ['/premium;x', 'PAYGRESS_REQUEST_AMBIGUOUS'],
      ['/public/..;/premium', 'PAYGRESS_REQUEST_AMBIGUOUS'],
      ['/premium/..;/public', 'PAYGRESS_REQUEST_AMBIGUOUS'],
    ];
    for (const [path, reason] of refusals) {
      const res = await fetch(`${proxy.url}${path}`, {
        headers: { 'X-Cashu': await mintToken(stack.mint.url, 10) },
      });
      await res.arrayBuffer();
      t.equal(res.status, 402, `${path}: not served for the default price`);
      t.equal(res.headers.get('x-paygress-reason'), reason, path);
    }
    const free = await fetch(`${proxy.url}/premium/..%3b/public`);
    await free.arrayBuffer();
    t.equal(free.status, 402, 'nor for free');

    // Dot segments, which fetch resolves before sending, written raw:
    // nginx routes on the resolved path, the application gets it as sent.
    // So is a raw `#` (fetch cuts it off): Paygress once priced what came
    // before it, and a Go server behind nginx served what came after.
    const port = Number(new URL(proxy.url).port);
    for (const target of [
      '/premium/../public/x',
      '/premium/%2e%2e/public/x',
      '/public#/../premium',
      '/public#/..%2fpremium',
    ]) {
      const head = await rawExchange(port, [
        `GET ${target} HTTP/1.1`,
        'Host: 127.0.0.1',
        'Connection: close',
      ]);
      t.match(head, /^HTTP\/1\.1 402 /, `${target}: refused`);
      t.match(head, /X-Paygress-Reason: PAYGRESS_REQUEST_AMBIGUOUS/i);
    }
  },
);

t.test(
  'the application gets the host Paygress priced, absolute-form included',
  async (t) => {
    const configFile = pricingFile(t, [
      '  default: { amount: 1000, unit: sat }',
      '  rules:',
      '    - name: free-host',
      '      match: { host: free.example }',
      '      free: true',
    ]);
    const hosts = await startStack({ mint: stack.mint, configFile });
    t.teardown(() => hosts.close());
    const proxy = await nginxFor(hosts.app.httpPort);
    t.teardown(() => proxy.peer.stop());
    const port = Number(new URL(proxy.url).port);

    const paid = await rawExchange(port, [
      'GET /premium HTTP/1.1',
      'Host: paid.example',
      'Connection: close',
    ]);
    t.match(paid, /^HTTP\/1\.1 402 /, 'paid.example costs 1000');

    // The request line's host wins over Host (RFC 9112, 3.2.2): nginx
    // routes and Paygress prices free.example, so that is what the
    // application must be asked for, not the paid.example of Host.
    const seen = upstream.requests.length;
    const free = await rawExchange(port, [
      'GET http://free.example/premium HTTP/1.1',
      'Host: paid.example',
      'Connection: close',
    ]);
    t.match(free, /^HTTP\/1\.1 200 /);
    t.equal(upstream.requests.length, seen + 1);
    t.equal(upstream.last()!.headers['host'], 'free.example');
  },
);

t.test(
  'a client header Paygress does not read cannot turn the answer into a 500',
  async (t) => {
    const port = Number(new URL(nginx.url).port);
    // nginx lets control bytes through that Node's parser refuses, and
    // header blocks over Paygress's 32 KiB; either made the subrequest
    // fail, and nginx answer 500.
    const long = `/premium/${'a'.repeat(7000)}`;
    for (const [target, extra] of [
      ['/premium', ['X-Junk: a\x01b']],
      // The path reaches Paygress three times (request line, X-Original-URL,
      // X-Original-URI); with the client's headers, over 32 KiB.
      [long, [1, 2, 3].map((i) => `X-Pad-${i}: ${'p'.repeat(7000)}`)],
    ] as const) {
      const head = await rawExchange(port, [
        `GET ${target} HTTP/1.1`,
        'Host: 127.0.0.1',
        ...extra,
        'Connection: close',
      ]);
      t.match(head, /^HTTP\/1\.1 402 /, 'refused as unpaid, not a 500');
    }
  },
);

t.test(
  'no header a client can send chooses how the request is read',
  async (t) => {
    const base = `http://127.0.0.1:${stack.app.httpPort}`;
    const paid = { 'X-Cashu': await mintToken(stack.mint.url, 100) };

    // nginx passes client headers to the subrequest: of X-Original-URL
    // and X-Original-URI, the one the proxy does not set is the client's.
    const conflicting = await fetch(`${base}/auth/nginx`, {
      headers: {
        ...paid,
        'X-Original-URL': 'https://app.example/premium',
        'X-Original-URI': '/public',
      },
    });
    t.equal(conflicting.status, 401);
    t.equal(
      conflicting.headers.get('x-paygress-reason'),
      'PAYGRESS_REQUEST_AMBIGUOUS',
    );
    const agreeing = await fetch(`${base}/auth/nginx`, {
      headers: {
        ...paid,
        'X-Original-URL': 'https://app.example/premium?a=1',
        'X-Original-URI': '/premium?a=1',
      },
    });
    t.equal(agreeing.status, 200, 'the same request twice is fine');

    // No path whose reading a client header picks.
    const sniffed = await fetch(`${base}/auth`, {
      headers: { 'X-Original-URL': 'https://app.example/public' },
    });
    await sniffed.arrayBuffer();
    t.equal(sniffed.status, 404);
  },
);

/** A configuration file of `pricing:` and the lines under it. */
function pricingFile(t: Test, lines: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'paygress-nginx-pricing-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'paygress.yaml');
  writeFileSync(file, ['pricing:', ...lines].join('\n'));
  return file;
}

/** The raw response header block Paygress sends to an nginx subrequest. */
function rawHeaderBlock(
  port: number,
  extra: Record<string, string>,
): Promise<string> {
  return rawExchange(port, [
    'GET /auth/nginx HTTP/1.1',
    'Host: 127.0.0.1',
    'X-Original-URL: http://127.0.0.1/premium',
    'X-Original-Method: GET',
    'Connection: close',
    ...Object.entries(extra).map(([k, v]) => `${k}: ${v}`),
  ]);
}
