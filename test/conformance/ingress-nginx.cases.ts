/**
 * ingress-nginx: real nginx runs the configuration the controller would
 * generate from deploy/nginx/ingress-nginx's two Ingress variants. With
 * snippets the client gets 402 + X-Cashu; without them (the controller's
 * default) it gets 401 and a `WWW-Authenticate: Cashu` challenge it can
 * pay from. Paygress prices the original request, not the auth-url.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { startProbeStack } from '../support/probe-rules.ts';
import { decodePaymentRequest } from '@cashu/cashu-ts';
import { parse } from 'yaml';
import { mintToken } from '../support/wallet.ts';
import { renderTemplate, startNginx } from '../support/nginx.ts';
import { rawExchange } from '../support/raw-http.ts';
import {
  UPSTREAM_BODY,
  freePort,
  startCountingRelay,
} from '../support/recording-upstream.ts';

const CONFIG = fileURLToPath(
  new URL(
    '../../deploy/nginx/ingress-nginx/ingress-nginx.generated.conf',
    import.meta.url,
  ),
);

const MANIFESTS = fileURLToPath(
  new URL('../../deploy/nginx/ingress-nginx/', import.meta.url),
);

// POST /premium costs 7 sat, /public is free, everything else 100 sat: the
// price a client is asked shows which request Paygress believed it saw.
const { stack, upstream } = await startProbeStack(t);
const relay = await startCountingRelay(stack.app.httpPort);
t.teardown(() => relay.close());

const snippetsPort = await freePort();
const plainPort = await freePort();
const nginx = await startNginx(
  renderTemplate(CONFIG, {
    SNIPPETS_PORT: snippetsPort,
    NO_SNIPPETS_PORT: plainPort,
    PAYGRESS_PORT: relay.port,
    UPSTREAM_PORT: upstream.port,
  }),
  [snippetsPort, plainPort],
);
t.teardown(() => nginx.stop());

const snippets = `http://127.0.0.1:${snippetsPort}`;
const plain = `http://127.0.0.1:${plainPort}`;

t.test('with snippets: 402 with X-Cashu and a JSON body', async (t) => {
  const res = await fetch(`${snippets}/premium`);
  const body = JSON.parse(await res.text());

  t.equal(res.status, 402);
  const cashu = res.headers.get('x-cashu') ?? '';
  t.match(cashu, /^creqA/);
  t.equal(res.headers.get('x-paygress-reason'), 'PAYGRESS_PAYMENT_REQUIRED');
  t.match(body, { amount: 100, unit: 'sat', paymentRequest: cashu });
});

t.test('without snippets: 401 with a payable WWW-Authenticate', async (t) => {
  const res = await fetch(`${plain}/premium`);
  await res.arrayBuffer();

  t.equal(res.status, 401);
  t.equal(res.headers.get('x-cashu'), null, 'no other header gets through');
  const challenge = res.headers.get('www-authenticate') ?? '';
  t.match(challenge, /^Cashu /);
  t.match(challenge, /reason="PAYGRESS_PAYMENT_REQUIRED"/);
  const creq = /request="(creqA[^"]+)"/.exec(challenge)?.[1];
  t.ok(creq, 'carries a creqA payment request');

  const request = decodePaymentRequest(creq!);
  t.equal(request.amount?.toNumber(), 100);
  t.equal(request.unit, 'sat');
  t.same(request.mints, [stack.mint.url]);
});

for (const [variant, base] of [
  ['with snippets', snippets],
  ['without snippets', plain],
] as const) {
  t.test(
    `${variant}: a valid token passes with the payment headers`,
    async (t) => {
      const token = await mintToken(stack.mint.url, 100);
      const res = await fetch(`${base}/premium`, {
        headers: { 'X-Cashu': token, 'X-Payment-Amount': '999999' },
      });

      t.equal(res.status, 200);
      t.equal(await res.text(), UPSTREAM_BODY);
      const seen = upstream.last()!.headers;
      t.equal(seen['x-payment-verified'], 'true');
      t.equal(seen['x-payment-amount'], '100', "Paygress's, not the client's");
      t.equal(seen['x-payment-unit'], 'sat');
      t.match(seen['x-user-id'], /^[A-Za-z0-9_-]{22}$/);
      t.equal(seen['x-cashu'], undefined, 'the token stays out of the app');
    },
  );
}

t.test(
  "with snippets: Paygress's credential in Authorization stays out of the app, the app's own passes",
  async (t) => {
    const own = await fetch(`${snippets}/premium`, {
      headers: {
        'X-Cashu': await mintToken(stack.mint.url, 100),
        Authorization: 'Basic YXBwOnVzZXI=',
      },
    });
    await own.arrayBuffer();
    t.equal(own.status, 200);
    t.equal(upstream.last()!.headers['authorization'], 'Basic YXBwOnVzZXI=');

    const token = await fetch(`${snippets}/premium`, {
      headers: {
        Authorization: `bearer  ${await mintToken(stack.mint.url, 100)}`,
      },
    });
    await token.arrayBuffer();
    t.equal(token.status, 200);
    t.equal(upstream.last()!.headers['authorization'], undefined);
  },
);

// nginx's `\s` is ASCII whitespace; a credential Paygress read past a
// no-break space (0xA0) would pass the snippet's filter to the app.
for (const authorization of ['Bearer\u00a0', '\u00a0Bearer ']) {
  t.test(
    `with snippets: ${JSON.stringify(authorization)} before a token is no credential`,
    async (t) => {
      const seen = upstream.requests.length;
      const res = await fetch(`${snippets}/premium`, {
        headers: {
          Authorization: `${authorization}${await mintToken(stack.mint.url, 100)}`,
        },
      });
      await res.arrayBuffer();
      t.equal(res.status, 402, 'refused as unpaid');
      t.equal(upstream.requests.length, seen, 'the application got nothing');
    },
  );
}

t.test(
  'Paygress sees the original method and URL, not the auth-url',
  async (t) => {
    const from = relay.received().length;
    const res = await fetch(`${plain}/premium?x=1`, {
      method: 'POST',
      body: 'some body',
      headers: { 'X-Forwarded-Uri': '/public', 'X-Forwarded-Method': 'GET' },
    });
    await res.arrayBuffer();

    const sent = relay.received().slice(from);
    t.match(sent, /^GET \/auth\/nginx HTTP\/1\.1\r\n/);
    t.match(sent, /\r\nHost: 127\.0\.0\.1\r\n/i);
    t.match(sent, /\r\nX-Original-Method: POST\r\n/i);
    t.match(
      sent,
      new RegExp(
        `\\r\\nX-Original-URL: http://127\\.0\\.0\\.1:${plainPort}/premium\\?x=1\\r\\n`,
        'i',
      ),
    );
    t.match(sent, /\r\nX-Sent-From: nginx-ingress-controller\r\n/i);
    t.notMatch(sent, /\r\nContent-Length:/i, 'no body announced');
    t.notMatch(sent, /some body/, 'no body sent');

    // Priced as POST /premium (7 sat), not as GET /public (free) from the
    // client's forged X-Forwarded-* nor as GET /auth/nginx (100 sat).
    t.equal(res.status, 401);
    const challenge = res.headers.get('www-authenticate') ?? '';
    t.match(challenge, /amount="7"/);
  },
);

t.test(
  "a ? in the client's Host does not move the priced path into a query",
  async (t) => {
    // nginx routes on the Host up to its first colon and lets the rest
    // through; ingress-nginx puts it all in X-Original-URL. Read up to its
    // first ?, the path became the query and every request cost what /
    // costs (nothing, behind a free home page).
    for (const port of [plainPort, snippetsPort]) {
      for (const host of ['127.0.0.1:1?', '127.0.0.1:?']) {
        const seen = upstream.requests.length;
        const head = await rawExchange(port, [
          'GET /premium HTTP/1.1',
          `Host: ${host}`,
          'Connection: close',
        ]);
        t.notMatch(head, /^HTTP\/1\.1 200/, `Host: ${host} is not let through`);
        t.equal(upstream.requests.length, seen, 'the application got nothing');
        if (port === snippetsPort) {
          t.match(
            head,
            /\r\nX-Paygress-Reason: PAYGRESS_REQUEST_AMBIGUOUS/i,
            'refused as unclear, not priced as /',
          );
        }
      }
    }
  },
);

t.test(
  'the generated config matches the manifests it stands for',
  async (t) => {
    const conf = readFileSync(CONFIG, 'utf8');
    const [withSnippets, withoutSnippets] = conf.split('# --- from ingress-no');
    const manifests = [
      ['ingress-snippets.yaml', withSnippets!],
      ['ingress-no-snippets.yaml', withoutSnippets!],
    ] as const;

    for (const [file, server] of manifests) {
      const manifest = parse(readFileSync(join(MANIFESTS, file), 'utf8')) as {
        metadata: { annotations: Record<string, string> };
      };
      const notes = manifest.metadata.annotations;
      const prefix = 'nginx.ingress.kubernetes.io/';
      t.equal(notes[`${prefix}auth-url`], 'http://127.0.0.1:8080/auth/nginx');
      for (const name of notes[`${prefix}auth-response-headers`]!.split(',')) {
        t.match(
          server,
          `proxy_set_header '${name}' $authHeader`,
          `${file}: ${name}`,
        );
      }
      for (const kind of ['configuration-snippet', 'server-snippet']) {
        const snippet = notes[`${prefix}${kind}`] ?? '';
        for (const line of snippet.split('\n').map((l) => l.trim())) {
          if (line !== '')
            t.ok(server.includes(line), `${file} ${kind}: ${line}`);
        }
      }
    }
    t.notMatch(withoutSnippets!, /paygress_402/, 'no snippets in the default');
  },
);
