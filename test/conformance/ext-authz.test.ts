/**
 * Envoy ext_authz v3 conformance against a whole Paygress and a dev mint.
 * Requests are laid out as Envoy lays them out, in both header encodings,
 * and every answer is decoded with test/support/envoy-wire.ts: a second,
 * independent description of Envoy's messages built from the published
 * field numbers, so a wrong number in proto/ cannot hide.
 */
import t from 'tap';
import { decodePaymentRequest } from '@cashu/cashu-ts';
import {
  callRaw,
  decodeCheckResponse,
  encodeCheckRequest,
  type CheckRequestSpec,
  type CheckResponse,
} from '../support/envoy-wire.ts';
import { mintToken } from '../support/wallet.ts';
import { startStack } from '../support/stack.ts';

const CHECK = '/envoy.service.auth.v3.Authorization/Check';
const OVERWRITE_IF_EXISTS_OR_ADD = 2;
const MAX_HEADER_VALUE = 16_384;

const stack = await startStack({ price: 100 });
t.teardown(() => stack.close());

async function check(spec: CheckRequestSpec) {
  return callRaw(stack.grpc, CHECK, encodeCheckRequest(spec));
}

function decoded(result: Awaited<ReturnType<typeof check>>): CheckResponse {
  if (!result.ok) throw new Error(`RPC error ${result.error.code}`);
  return decodeCheckResponse(result.bytes);
}

/** The request Envoy sends for `GET https://app.example/premium?x=1`. */
function envoyRequest(extra: [string, string][] = []): CheckRequestSpec {
  return {
    source: { address: '203.0.113.7', port: 51000 },
    http: {
      id: '9f1c',
      method: 'GET',
      host: 'app.example',
      path: '/premium?x=1',
      scheme: 'https',
      protocol: 'HTTP/1.1',
      headers: [
        [':authority', 'app.example'],
        [':path', '/premium?x=1'],
        [':method', 'GET'],
        ['accept', 'text/html,application/json'],
        ...extra,
      ],
    },
  };
}

function allHeaderValues(response: CheckResponse): string[] {
  return [
    ...(response.okResponse?.headers ?? []),
    ...(response.okResponse?.responseHeadersToAdd ?? []),
    ...(response.deniedResponse?.headers ?? []),
  ].map((h) => h.value);
}

t.test(
  'unpaid: RPC OK, code 7, denied_response 402 with X-Cashu and JSON',
  async (t) => {
    const response = decoded(await check(envoyRequest()));
    t.equal(response.status?.code, 7, 'PERMISSION_DENIED');
    t.equal(response.okResponse, undefined);
    const denied = response.deniedResponse!;
    t.equal(denied.httpStatus, 402);

    const headers = Object.fromEntries(denied.headers.map((h) => [h.key, h]));
    t.equal(headers['content-type']?.value, 'application/json');
    for (const h of denied.headers) {
      t.equal(
        h.appendAction,
        OVERWRITE_IF_EXISTS_OR_ADD,
        `${h.key} append_action`,
      );
    }
    const request = decodePaymentRequest(headers['x-cashu']!.value);
    t.equal(request.amount?.toNumber(), 100);
    t.same(request.mints, [stack.mint.url]);

    const body = JSON.parse(denied.body);
    t.equal(body.reason, 'PAYGRESS_PAYMENT_REQUIRED');
    t.equal(body.amount, 100);
    t.equal(body.unit, 'sat');
  },
);

t.test(
  'paid: RPC OK, code 0, ok_response headers with append_action',
  async (t) => {
    const token = await mintToken(stack.mint.url, 100);
    const response = decoded(
      await check(
        envoyRequest([
          ['x-cashu', token],
          ['x-payment-verified', 'forged'],
        ]),
      ),
    );
    t.equal(response.status?.code, 0);
    t.equal(response.deniedResponse, undefined);
    const ok = response.okResponse!;
    const headers = Object.fromEntries(ok.headers.map((h) => [h.key, h]));
    t.equal(headers['x-payment-verified']?.value, 'true');
    t.equal(headers['x-payment-amount']?.value, '100');
    t.equal(headers['x-payment-unit']?.value, 'sat');
    for (const h of ok.headers) {
      t.equal(
        h.appendAction,
        OVERWRITE_IF_EXISTS_OR_ADD,
        `${h.key} overwrites a client copy`,
      );
    }

    const replay = decoded(await check(envoyRequest([['x-cashu', token]])));
    t.equal(replay.status?.code, 7);
    t.equal(replay.deniedResponse?.httpStatus, 402);
    t.equal(
      JSON.parse(replay.deniedResponse!.body).reason,
      'PAYGRESS_TOKEN_REPLAYED',
    );
  },
);

t.test(
  'repeated headers arrive joined with a comma, as Envoy joins them',
  async (t) => {
    const token = await mintToken(stack.mint.url, 100);
    // Envoy joins repeated headers; a token followed by another value is not
    // a token, so the joined form must be refused cleanly, not crash.
    const response = decoded(
      await check(envoyRequest([['x-cashu', `${token},${token}`]])),
    );
    t.equal(response.status?.code, 7);
    t.equal(
      JSON.parse(response.deniedResponse!.body).reason,
      'PAYGRESS_TOKEN_MALFORMED',
    );
  },
);

t.test(
  'encode_raw_headers: header_map with raw_value is read the same',
  async (t) => {
    const token = await mintToken(stack.mint.url, 100);
    const spec = envoyRequest();
    spec.http = {
      ...spec.http!,
      headers: undefined,
      headerMap: [
        { key: ':authority', rawValue: Buffer.from('app.example') },
        { key: ':path', rawValue: Buffer.from('/premium?x=1') },
        { key: ':method', rawValue: Buffer.from('GET') },
        { key: 'x-cashu', rawValue: Buffer.from(token) },
      ],
    };
    const response = decoded(await check(spec));
    t.equal(response.status?.code, 0, 'the token in raw_value paid');
  },
);

t.test(
  'TCP (no request.http): denied cleanly with PAYGRESS_NOT_HTTP',
  async (t) => {
    const response = decoded(
      await check({ source: { address: '203.0.113.7', port: 51000 } }),
    );
    t.equal(response.status?.code, 7);
    t.equal(response.deniedResponse?.httpStatus, 403);
    t.equal(
      JSON.parse(response.deniedResponse!.body).reason,
      'PAYGRESS_NOT_HTTP',
    );
  },
);

t.test(
  'mint down: an RPC error UNAVAILABLE, for failure_mode_allow to decide',
  async (t) => {
    const token = await mintToken(stack.mint.url, 100);
    await stack.mint.stop();
    const result = await check(envoyRequest([['x-cashu', token]]));
    await stack.mint.start();

    t.equal(result.ok, false);
    if (!result.ok) {
      t.equal(result.error.code, 14);
      t.match(result.error.details, /PAYGRESS_MINT_UNAVAILABLE/);
    }
  },
);

t.test('no header value exceeds 16,384 bytes', async (t) => {
  const huge = 'x'.repeat(40_000);
  const responses = [
    decoded(await check(envoyRequest([['x-cashu', huge]]))),
    decoded(
      await check(
        envoyRequest([
          ['cookie', huge],
          ['x-request-id', huge],
        ]),
      ),
    ),
    decoded(
      await check(
        envoyRequest([['x-cashu', await mintToken(stack.mint.url, 100)]]),
      ),
    ),
  ];
  for (const response of responses) {
    for (const value of allHeaderValues(response)) {
      t.ok(Buffer.byteLength(value) <= MAX_HEADER_VALUE);
    }
  }
  t.equal(
    JSON.parse(responses[0]!.deniedResponse!.body).reason,
    'PAYGRESS_TOKEN_TOO_LARGE',
  );
});
