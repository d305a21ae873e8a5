/**
 * A rate payment buys a grant; the payer must receive it through each
 * controller's own channel to use it: nginx `auth_request_set` +
 * `add_header` (deploy/nginx/nginx.conf), the `Set-Cookie` that Traefik's
 * `addAuthCookiesToResponse` copies, and Envoy's `response_headers_to_add`.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import {
  callRaw,
  decodeCheckResponse,
  encodeCheckRequest,
} from '../support/envoy-wire.ts';
import { renderTemplate, startNginx } from '../support/nginx.ts';
import {
  freePort,
  startRecordingUpstream,
} from '../support/recording-upstream.ts';
import { startStack } from '../support/stack.ts';
import { mintToken } from '../support/wallet.ts';
import { tempDir } from '../support/temp-dir.ts';

const configFile = join(tempDir('paygress-grant-'), 'p.yaml');
writeFileSync(
  configFile,
  `pricing:
  rules:
    - name: metered
      match: { path: /premium, pathMatch: prefix }
      rate: { amount: 10, unit: sat, perSeconds: 60, minSeconds: 60, maxSeconds: 3600 }
grants:
  key: a-grant-key-of-the-operators-own-0123456789
`,
);
const stack = await startStack({ configFile });
t.teardown(() => stack.close());

t.test('nginx: the client receives the grant and can use it', async (t) => {
  const upstream = await startRecordingUpstream();
  t.teardown(() => upstream.close());
  const port = await freePort();
  const config = renderTemplate(
    fileURLToPath(new URL('../../deploy/nginx/nginx.conf', import.meta.url)),
    {
      LISTEN_PORT: port,
      PAYGRESS_PORT: stack.app.httpPort,
      UPSTREAM_PORT: upstream.port,
    },
  );
  const nginx = await startNginx(config, [port]);
  t.teardown(() => nginx.stop());
  const url = `http://127.0.0.1:${port}/premium`;

  const paid = await fetch(url, {
    headers: { 'X-Cashu': await mintToken(stack.mint.url, 10) },
  });
  await paid.text();
  t.equal(paid.status, 200);
  const grant = paid.headers.get('x-paygress-grant') ?? '';
  t.match(grant, /^pgr1\./, 'X-Paygress-Grant reaches the client');
  // Over http: a __Host- cookie needs https.
  t.match(paid.headers.get('set-cookie'), /^paygress_grant=pgr1\./);

  const again = await fetch(url, {
    headers: { Authorization: `Bearer ${grant}` },
  });
  await again.text();
  t.equal(again.status, 200, 'the grant buys the next request');
  const cookie = await fetch(url, {
    headers: { Cookie: `paygress_grant=${grant}` },
  });
  await cookie.text();
  t.equal(cookie.status, 200, 'so does the cookie');
});

t.test(
  'Traefik: the auth answer carries the cookie addAuthCookiesToResponse copies',
  async (t) => {
    const res = await fetch(`${stack.base}/auth/forward`, {
      headers: {
        'X-Forwarded-Method': 'GET',
        'X-Forwarded-Proto': 'https',
        'X-Forwarded-Host': 'app.example',
        'X-Forwarded-Uri': '/premium',
        'X-Cashu': await mintToken(stack.mint.url, 10),
      },
    });
    t.equal(res.status, 200);
    t.match(
      res.headers.get('set-cookie'),
      /^__Host-paygress_grant=pgr1\.[^;]+; Path=\/; Max-Age=60; HttpOnly; SameSite=Lax; Secure$/,
    );
  },
);

t.test(
  'Envoy: response_headers_to_add carries the grant to the client',
  async (t) => {
    const token = await mintToken(stack.mint.url, 10);
    const result = await callRaw(
      stack.grpc,
      '/envoy.service.auth.v3.Authorization/Check',
      encodeCheckRequest({
        http: {
          method: 'GET',
          host: 'app.example',
          path: '/premium',
          scheme: 'https',
          headers: [
            [':authority', 'app.example'],
            [':path', '/premium'],
            [':method', 'GET'],
            ['x-cashu', token],
          ],
        },
      }),
    );
    t.ok(result.ok);
    if (!result.ok) return;
    const ok = decodeCheckResponse(result.bytes).okResponse!;
    const toClient = Object.fromEntries(
      ok.responseHeadersToAdd.map((h) => [h.key, h]),
    );
    t.match(toClient['x-paygress-grant']?.value, /^pgr1\./);
    t.match(toClient['set-cookie']?.value, /^__Host-paygress_grant=pgr1\./);
    t.equal(toClient['x-paygress-grant']?.appendAction, 2);
    // Appended, so the application's own Set-Cookie lines stay.
    t.equal(toClient['set-cookie']?.appendAction, 0);
  },
);
