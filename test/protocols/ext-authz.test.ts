import t from 'tap';
import type { Test } from 'tap';
import * as grpc from '@grpc/grpc-js';
import {
  connect as connectHttp2,
  type ClientHttp2Session,
  type ClientHttp2Stream,
} from 'node:http2';
import { pino } from 'pino';
import type {
  Allow,
  AuthRequest,
  Decider,
  Decision,
  Deny,
} from '../../src/core/model.ts';
import { createDecisionLog } from '../../src/protocols/decision-log.ts';
import { startGrpcServer } from '../../src/protocols/grpc-server.ts';
import type { GrpcServer } from '../../src/protocols/grpc-server.ts';
import {
  callRaw,
  decodeCheckResponse,
  encodeCheckRequest,
  lenField,
  messageField,
} from '../support/envoy-wire.ts';
import type {
  CheckRequestSpec,
  CheckResponse,
  HeaderOption,
} from '../support/envoy-wire.ts';

const CHECK = '/envoy.service.auth.v3.Authorization/Check';
const OVERWRITE_IF_EXISTS_OR_ADD = 2;
const PERMISSION_DENIED = 7;

const ALLOW: Allow = {
  kind: 'allow',
  amount: 21,
  unit: 'sat',
  upstreamHeaders: { 'X-Payment-Verified': 'true', 'X-Payment-Amount': '21' },
  clientHeaders: { 'X-Paygress-Grant': 'grant-credential' },
};

const PAYER_DENY: Deny = {
  kind: 'deny',
  reason: 'PAYGRESS_PAYMENT_REQUIRED',
  message: 'pay 21 sat',
  fault: 'payer',
  price: { amount: 21, unit: 'sat', mints: ['https://mint.example'] },
  paymentRequest: 'creqAexample',
};

// A decider that records every request and answers from a script.
const seen: AuthRequest[] = [];
let script: (request: AuthRequest) => Promise<Decision> = async () => ALLOW;
const decider: Decider = {
  decide: (request) => {
    seen.push(request);
    return script(request);
  },
};

const logLines: Record<string, unknown>[] = [];
const rawLog: string[] = [];
const logger = pino(
  { level: 'debug' },
  {
    write: (line: string) => {
      rawLog.push(line);
      logLines.push(JSON.parse(line));
    },
  },
);

let server: GrpcServer;
let client: grpc.Client;

t.before(async () => {
  server = await startGrpcServer({
    host: '127.0.0.1',
    port: 0,
    decider,
    logger,
    // Every decision, the scripted routine ones included, gets its line.
    decisionLog: createDecisionLog(logger, { policy: 'all', refusalLimit: 0 }),
  });
  client = new grpc.Client(
    `127.0.0.1:${server.port}`,
    grpc.credentials.createInsecure(),
  );
});

t.teardown(async () => {
  client.close();
  await server.close(1000);
});

t.beforeEach(() => {
  seen.length = 0;
  script = async () => ALLOW;
});

async function check(spec: CheckRequestSpec): Promise<CheckResponse> {
  const result = await callRaw(client, CHECK, encodeCheckRequest(spec));
  if (!result.ok) throw result.error;
  return decodeCheckResponse(result.bytes);
}

async function checkFails(spec: CheckRequestSpec): Promise<grpc.ServiceError> {
  const result = await callRaw(client, CHECK, encodeCheckRequest(spec));
  if (result.ok) throw new Error('expected an RPC error');
  return result.error;
}

async function requestFor(
  test: Test,
  http: CheckRequestSpec['http'],
): Promise<AuthRequest> {
  await check({ http, source: { address: '203.0.113.7', port: 51000 } });
  test.equal(seen.length, 1, 'the decider is asked once');
  return seen[0]!;
}

function headerMap(options: HeaderOption[]): Record<string, string> {
  return Object.fromEntries(options.map((o) => [o.key, o.value]));
}

t.test(
  'maps the string header map, lower-cased, pseudo-headers kept',
  async (t) => {
    const request = await requestFor(t, {
      method: 'get',
      host: 'api.example.com',
      path: '/v1/items',
      scheme: 'https',
      headers: [
        [':authority', 'api.example.com'],
        [':path', '/v1/items'],
        [':method', 'GET'],
        ['X-Mixed-Case', 'one'],
        ['accept', 'text/html,application/json'],
      ],
    });

    t.equal(request.protocol, 'ext-authz');
    t.equal(request.method, 'get', 'as sent, for pricing to judge');
    t.equal(request.scheme, 'https');
    t.equal(request.headers[':authority'], 'api.example.com');
    t.equal(request.headers[':path'], '/v1/items');
    t.equal(request.headers[':method'], 'GET');
    t.equal(request.headers['x-mixed-case'], 'one');
    t.notOk('X-Mixed-Case' in request.headers);
    t.equal(request.headers['accept'], 'text/html,application/json');
    t.equal(request.clientAddress, '203.0.113.7');
  },
);

t.test(
  'reads header_map with raw_value and joins repeated names',
  async (t) => {
    const request = await requestFor(t, {
      method: 'POST',
      path: '/',
      headerMap: [
        { key: ':authority', rawValue: Buffer.from('shop.example') },
        { key: 'X-Forwarded-For', rawValue: Buffer.from('198.51.100.1') },
        { key: 'x-forwarded-for', rawValue: Buffer.from('198.51.100.2') },
        { key: 'x-name', rawValue: Buffer.from('zoë', 'utf8') },
        { key: 'x-plain', value: 'from-value' },
        { key: 'x-request-id', rawValue: Buffer.from('rid-from-map') },
        { key: '__proto__', value: 'plain-data' },
      ],
    });

    t.equal(request.headers['x-forwarded-for'], '198.51.100.1,198.51.100.2');
    t.equal(request.headers['x-name'], 'zoë');
    t.equal(request.headers['x-plain'], 'from-value');
    t.equal(request.host, 'shop.example', 'host falls back to :authority');
    t.equal(request.requestId, 'rid-from-map');
    t.ok(Object.hasOwn(request.headers, '__proto__'), 'kept as plain data');
    t.equal(
      (request.headers as Record<string, unknown>)['constructor'],
      undefined,
      'no inherited names either',
    );
  },
);

t.test('splits path and query', async (t) => {
  const withQuery = await requestFor(t, { path: '/a/b?x=1&y=%20z' });
  t.equal(withQuery.path, '/a/b');
  t.equal(withQuery.query, 'x=1&y=%20z');

  seen.length = 0;
  const without = await requestFor(t, { path: '/plain' });
  t.equal(without.path, '/plain');
  t.equal(without.query, '');

  seen.length = 0;
  const fragment = await requestFor(t, { path: '/f?q=1#part' });
  t.equal(fragment.path, '/f');
  t.equal(fragment.query, 'q=1#part', 'after the query, part of it');

  seen.length = 0;
  const hashInPath = await requestFor(t, { path: '/f#/../g?q' });
  t.equal(hashInPath.path, '/f#/../g', 'kept, for pricing to refuse');
  t.equal(hashInPath.query, 'q');

  seen.length = 0;
  const fromPseudo = await requestFor(t, { headers: [[':path', '/p?z=9']] });
  t.equal(fromPseudo.path, '/p', ':path stands in for a missing path');
  t.equal(fromPseudo.query, 'z=9');
});

t.test('normalises host and :authority', async (t) => {
  const cases: [CheckRequestSpec['http'], string][] = [
    [{ host: 'API.Example.COM:8443' }, 'api.example.com'],
    [{ headers: [[':authority', 'Shop.Example:80']] }, 'shop.example'],
    [
      { host: 'first.example', headers: [[':authority', 'x.example']] },
      'first.example',
    ],
    [{ host: '[2001:DB8::1]:8080' }, '[2001:db8::1]'],
    [{ host: '[::1]' }, '[::1]'],
    [{ host: '2001:db8::2' }, '2001:db8::2'],
  ];
  for (const [http, host] of cases) {
    seen.length = 0;
    t.equal((await requestFor(t, { path: '/', ...http })).host, host);
  }
});

t.test(
  'takes the request id from http.id, then x-request-id, then makes one',
  async (t) => {
    t.equal(
      (
        await requestFor(t, {
          id: 'envoy-id',
          headers: [['x-request-id', 'hdr']],
        })
      ).requestId,
      'envoy-id',
    );
    seen.length = 0;
    t.equal(
      (await requestFor(t, { headers: [['x-request-id', 'hdr']] })).requestId,
      'hdr',
    );
    seen.length = 0;
    const made = (await requestFor(t, { path: '/' })).requestId;
    seen.length = 0;
    const next = (await requestFor(t, { path: '/' })).requestId;
    t.match(made, /^pg-[0-9a-f]{12}-[0-9a-z]+$/);
    t.not(made, next, 'each request its own');
  },
);

t.test('tolerates fields Paygress does not model', async (t) => {
  const request = await requestFor(t, {
    path: '/x',
    size: 1234,
    protocol: 'HTTP/2',
    body: 'ignored',
  });
  t.equal(request.path, '/x');

  await check({ http: { path: '/' }, contextExtensions: [['route', 'r1']] });
});

t.test(
  'allow: status 0, overwriting upstream headers, client headers',
  async (t) => {
    const response = await check({ http: { path: '/' } });

    t.equal(response.status?.code ?? 0, 0);
    t.equal(response.deniedResponse, undefined);
    const ok = response.okResponse!;
    t.same(headerMap(ok.headers), {
      'x-payment-verified': 'true',
      'x-payment-amount': '21',
    });
    for (const h of [...ok.headers, ...ok.responseHeadersToAdd]) {
      t.equal(
        h.appendAction,
        OVERWRITE_IF_EXISTS_OR_ADD,
        `${h.key} overwrites`,
      );
    }
    t.same(headerMap(ok.responseHeadersToAdd), {
      'x-paygress-grant': 'grant-credential',
    });
    t.same(ok.headersToRemove, ['x-cashu'], 'the token stays out');
  },
);

t.test(
  "allow: the credential paid with is removed from the upstream's request",
  async (t) => {
    // Frozen, as the core's constant decisions are: rendered once per
    // variant and kept, so the variants must not mix.
    const frozen = Object.freeze({ ...ALLOW });
    script = async () => frozen;
    const removed = async (authorization?: string) =>
      (
        await check({
          http: {
            path: '/',
            headers: authorization ? [['authorization', authorization]] : [],
          },
        })
      ).okResponse!.headersToRemove;

    t.same(await removed(), ['x-cashu']);
    t.same(await removed('Bearer cashuBo2Ftexample'), [
      'x-cashu',
      'authorization',
    ]);
    t.same(await removed('bearer pgr1.grant.sig'), [
      'x-cashu',
      'authorization',
    ]);
    t.same(
      await removed('Basic YXBwOnVzZXI='),
      ['x-cashu'],
      "the application's own Authorization passes",
    );
    t.same(
      await removed('Bearer eyJhbGciOiJIUzI1NiJ9.app.jwt'),
      ['x-cashu'],
      "and so does the application's own bearer token",
    );
  },
);

t.test(
  'payer deny: status 7 and an HTTP 402 with payment headers',
  async (t) => {
    script = async () => PAYER_DENY;
    const response = await check({ http: { path: '/' } });

    t.equal(response.status?.code, PERMISSION_DENIED);
    t.equal(response.status?.message, 'PAYGRESS_PAYMENT_REQUIRED');
    t.equal(response.okResponse, undefined);
    const denied = response.deniedResponse!;
    t.equal(denied.httpStatus, 402);
    const headers = headerMap(denied.headers);
    t.equal(headers['x-cashu'], 'creqAexample');
    t.equal(headers['x-paygress-reason'], 'PAYGRESS_PAYMENT_REQUIRED');
    t.equal(headers['content-type'], 'application/json');
    t.equal(headers['cache-control'], 'no-store', 'as the HTTP adapters');
    for (const h of denied.headers)
      t.equal(h.appendAction, OVERWRITE_IF_EXISTS_OR_ADD);
    const body = JSON.parse(denied.body);
    t.equal(body.reason, 'PAYGRESS_PAYMENT_REQUIRED');
    t.equal(body.amount, 21);
    t.equal(body.unit, 'sat');
    t.same(body.mints, ['https://mint.example']);
  },
);

t.test('our fault becomes UNAVAILABLE, never a decision', async (t) => {
  script = async () => ({
    kind: 'deny',
    reason: 'PAYGRESS_MINT_UNAVAILABLE',
    message: 'mint did not answer',
    fault: 'ours',
  });
  const error = await checkFails({ http: { path: '/' } });
  t.equal(error.code, grpc.status.UNAVAILABLE);
  t.match(error.details, /PAYGRESS_MINT_UNAVAILABLE/);
});

t.test(
  'our fault that hands money back is a 503 that carries it',
  async (t) => {
    const failed: Deny = {
      kind: 'deny',
      reason: 'PAYGRESS_PROVISION_FAILED',
      message: 'the pod could not be provisioned',
      fault: 'ours',
    };
    for (const [what, money, header] of [
      ['refund', { refund: 'cashuBrefund' }, 'x-cashu'],
      ['credit', { credit: 'pgr1.credit' }, 'x-paygress-grant'],
    ] as const) {
      script = async () => ({ ...failed, ...money });
      const response = await check({ http: { path: '/' } });
      t.equal(response.status?.code, PERMISSION_DENIED, `${what}: a decision`);
      const denied = response.deniedResponse!;
      t.equal(denied.httpStatus, 503);
      const headers = headerMap(denied.headers);
      t.equal(headers[header], Object.values(money)[0], `${what} sent`);
      t.equal(headers['retry-after'], '5');
      t.equal(headers['x-paygress-reason'], 'PAYGRESS_PROVISION_FAILED');
    }
  },
);

t.test('a throwing decider becomes UNAVAILABLE', async (t) => {
  script = async () => {
    throw new TypeError('bug');
  };
  const error = await checkFails({ http: { path: '/' } });
  t.equal(error.code, grpc.status.UNAVAILABLE);
  t.match(error.details, /PAYGRESS_INTERNAL/);

  decider.decide = () => {
    throw new Error('synchronous bug');
  };
  try {
    const sync = await checkFails({ http: { path: '/' } });
    t.equal(sync.code, grpc.status.UNAVAILABLE);
  } finally {
    decider.decide = (request) => {
      seen.push(request);
      return script(request);
    };
  }
});

t.test(
  'a TCP check is denied with PAYGRESS_NOT_HTTP, decider not asked',
  async (t) => {
    const response = await check({
      source: { address: '10.1.1.1', port: 4000 },
    });
    t.equal(response.status?.code, PERMISSION_DENIED);
    t.equal(response.status?.message, 'PAYGRESS_NOT_HTTP');
    t.equal(response.deniedResponse?.httpStatus, 403);
    t.equal(seen.length, 0);

    const empty = await callRaw(client, CHECK, Buffer.alloc(0));
    t.ok(empty.ok);
    if (empty.ok)
      t.equal(decodeCheckResponse(empty.bytes).status?.code, PERMISSION_DENIED);
    t.equal(seen.length, 0);
  },
);

t.test(
  'garbage bytes end as an error or a deny; the server lives on',
  async (t) => {
    const garbage = [
      Buffer.from([
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
      ]),
      Buffer.from([0x0a, 0x7f, 0x01]), // length runs past the end
      Buffer.from('not protobuf at all'),
      messageField(
        1,
        messageField(4, lenField(2, Buffer.from([0x1a, 0x05, 0x0a]))),
      ),
    ];
    for (const bytes of garbage) {
      const result = await callRaw(client, CHECK, bytes);
      if (result.ok) {
        t.not(
          decodeCheckResponse(result.bytes).status?.code ?? 0,
          0,
          'not an allow',
        );
      } else {
        t.not(result.error.code, grpc.status.OK);
      }
    }
    t.equal(seen.length, 0, 'garbage never reaches the decider');

    const after = await check({ http: { path: '/' } });
    t.equal(after.status?.code ?? 0, 0, 'still answering');
  },
);

t.test(
  'allow: a header of ours left empty is removed too, so no client copy survives',
  async (t) => {
    script = async () => ({
      ...ALLOW,
      upstreamHeaders: {
        'X-Payment-Verified': 'true',
        'X-User-ID': '',
        'X-Provisioned-Pod': '',
      },
    });
    const ok = (
      await check({
        http: { path: '/', headers: [['x-provisioned-pod', 'victim']] },
      })
    ).okResponse!;
    t.same(headerMap(ok.headers), {
      'x-payment-verified': 'true',
      'x-user-id': '',
      'x-provisioned-pod': '',
    });
    t.same(ok.headersToRemove, ['x-cashu', 'x-user-id', 'x-provisioned-pod']);
  },
);

t.test('no header value over 16384 bytes is sent', async (t) => {
  const huge = 'a'.repeat(16_385);
  script = async () => ({
    ...ALLOW,
    upstreamHeaders: { 'X-Payment-Verified': 'true', 'X-Big': huge },
    clientHeaders: { 'X-Exact': 'b'.repeat(16_384), 'X-Too-Big': huge },
  });
  const ok = (await check({ http: { path: '/' } })).okResponse!;
  t.same(Object.keys(headerMap(ok.headers)), ['x-payment-verified']);
  t.same(
    ok.headersToRemove,
    ['x-cashu', 'x-big'],
    'a client copy cannot survive',
  );
  t.same(Object.keys(headerMap(ok.responseHeadersToAdd)), ['x-exact']);

  script = async () => ({ ...PAYER_DENY, refund: `cashuB${huge}` });
  const denied = (await check({ http: { path: '/' } })).deniedResponse!;
  t.equal(headerMap(denied.headers)['x-cashu'], undefined);
  t.equal(
    JSON.parse(denied.body).refund,
    `cashuB${huge}`,
    'the body still carries it',
  );
  t.ok(logLines.some((l) => l.msg === 'header left out: value unsendable'));
});

t.test('logs one decision line per check and no secret header', async (t) => {
  logLines.length = 0;
  rawLog.length = 0;
  script = async () => PAYER_DENY;
  await check({
    http: {
      id: 'log-req',
      path: '/',
      headers: [
        ['authorization', 'Bearer secret-auth'],
        ['x-cashu', 'cashuBsecret-token'],
        ['cookie', 'session=secret-cookie'],
      ],
    },
  });

  const decisions = logLines.filter((l) => l.msg === 'decision');
  t.equal(decisions.length, 1);
  t.match(decisions[0], {
    reqId: 'log-req',
    protocol: 'ext-authz',
    outcome: 'deny',
    reason: 'PAYGRESS_PAYMENT_REQUIRED',
    amount: 21,
    durationMs: Number,
  });
  const all = rawLog.join('');
  for (const secret of ['secret-auth', 'secret-token', 'secret-cookie']) {
    t.notOk(all.includes(secret), `${secret} is not logged`);
  }
});

/**
 * A gRPC listener whose every check is a paid allow (`r-1`), held until
 * `finish()` when `held`, and a client of it; `lost` collects what the
 * listener reported undelivered.
 */
async function payingListener(t: Test, held: boolean) {
  const lost: string[] = [];
  const paid: Decision = { ...ALLOW, redemptionId: 'r-1' };
  let finish: () => void = () => {};
  let asked: () => void = () => {};
  const decided = new Promise<void>((resolve) => (asked = resolve));
  const server = await startGrpcServer({
    host: '127.0.0.1',
    port: 0,
    logger: pino({ level: 'silent' }),
    decider: {
      decide: () => {
        asked();
        if (!held) return Promise.resolve(paid);
        return new Promise((resolve) => (finish = () => resolve(paid)));
      },
      undelivered: (decision) => lost.push(decision.redemptionId ?? ''),
    },
  });
  const client = new grpc.Client(
    `127.0.0.1:${server.port}`,
    grpc.credentials.createInsecure(),
  );
  t.teardown(() => client.close());
  return { server, client, lost, decided, finish: () => finish() };
}

// The grace period ends (every connection closed) in the same turn as a
// paid decision is made, just after it or just before it: either the
// payer gets the answer, or the payment is recorded as owed. Never
// neither, which would refuse the payer's retry as a replay.
for (const order of ['cut, then decided', 'decided, then cut'] as const) {
  t.test(
    `a paid answer at the shutdown cut (${order}) arrives or is owed`,
    async (t) => {
      const { server, client, lost, decided, finish } = await payingListener(
        t,
        true,
      );
      const call = callRaw(client, CHECK, encodeCheckRequest({ http: {} }));
      await decided;

      let closed: Promise<void>;
      if (order === 'cut, then decided') {
        closed = server.close(0);
        setTimeout(finish, 0);
      } else {
        setTimeout(finish, 0);
        closed = server.close(0);
      }
      await closed;
      await server.idle();
      const answered = (await call).ok;
      t.same(lost, answered ? [] : ['r-1'], answered ? 'answered' : 'owed');
    },
  );
}

t.test('a paid answer that arrived is not owed at shutdown', async (t) => {
  const { server, client, lost } = await payingListener(t, false);
  for (let i = 0; i < 3; i++) {
    const result = await callRaw(
      client,
      CHECK,
      encodeCheckRequest({ http: {} }),
    );
    t.ok(result.ok, 'answered');
  }
  await server.close(0);
  await server.idle();
  t.same(lost, [], 'none owed');
});

t.test('a paid call Envoy gave up on is owed once', async (t) => {
  const { server, client, lost, decided, finish } = await payingListener(
    t,
    true,
  );
  const call = client.makeUnaryRequest(
    CHECK,
    (b: Buffer) => b,
    (b: Buffer) => b,
    encodeCheckRequest({ http: {} }),
    () => {},
  );
  await decided;
  call.cancel(); // Envoy's timeout
  await new Promise((resolve) => setTimeout(resolve, 50));
  finish();
  await new Promise((resolve) => setTimeout(resolve, 50));
  await server.close(0);
  await server.idle();
  t.same(lost, ['r-1'], 'owed, and once');
});

t.test('a paid check whose answer could not be made is owed', async (t) => {
  const lost: string[] = [];
  const server = await startGrpcServer({
    host: '127.0.0.1',
    port: 0,
    logger: pino({ level: 'silent' }),
    decider: {
      decide: async () => ({ ...ALLOW, redemptionId: 'r-2' }),
      undelivered: (decision) => lost.push(decision.redemptionId ?? ''),
    },
    observe: () => {
      throw new Error('bug while counting');
    },
  });
  const client = new grpc.Client(
    `127.0.0.1:${server.port}`,
    grpc.credentials.createInsecure(),
  );
  t.teardown(async () => {
    client.close();
    await server.close(0);
  });
  const started = performance.now();
  const result = await callRaw(client, CHECK, encodeCheckRequest({ http: {} }));
  t.notOk(result.ok, 'no allow');
  if (!result.ok) t.equal(result.error.code, grpc.status.UNAVAILABLE);
  t.ok(performance.now() - started < 5000, 'told at once');
  await server.idle();
  t.same(lost, ['r-2'], 'the payment is owed, once');
});

t.test('a request that is no CheckRequest is refused as such', async (t) => {
  const result = await callRaw(client, CHECK, Buffer.from([0x0a, 0xff]));
  t.notOk(result.ok);
  if (!result.ok) t.equal(result.error.code, grpc.status.INVALID_ARGUMENT);
  t.equal(seen.length, 0, 'nothing decided');
});

/** A Check stream on a raw HTTP/2 session, left open for writing. */
function unendedCheck(session: ClientHttp2Session): ClientHttp2Stream {
  const stream = session.request(
    {
      ':method': 'POST',
      ':path': CHECK,
      'content-type': 'application/grpc',
      te: 'trailers',
    },
    { endStream: false },
  );
  stream.on('error', () => {});
  return stream;
}

t.test('checks left unfinished hold their bytes, not more', async (t) => {
  // 255 KiB of empty header entries: decoded, 35 times that.
  const empties = Buffer.alloc(255 * 1024 - 64);
  for (let i = 0; i < empties.length; i += 2) empties[i] = 0x0a;
  const message = messageField(
    1,
    messageField(4, lenField(2, lenField(13, empties))),
  );
  const framed = Buffer.alloc(5 + message.length);
  framed.writeUInt32BE(message.length, 1);
  message.copy(framed, 5);

  const before = process.memoryUsage().heapUsed;
  const session = connectHttp2(`http://127.0.0.1:${server.port}`);
  t.teardown(() => session.destroy());
  let sent = 0;
  for (let i = 0; i < 40; i++) {
    const stream = unendedCheck(session);
    // The message whole, the stream never ended.
    stream.write(framed, () => (sent += 1));
  }
  while (sent < 40) await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => setTimeout(r, 300));
  const grown = (process.memoryUsage().heapUsed - before) / 2 ** 20;
  // Decoded as they arrived, the 40 held some 350 MB of heap.
  t.ok(grown < 100, `heap grew ${grown.toFixed(0)} MB`);
  t.equal(seen.length, 0, 'nothing decided before the stream ends');
});

t.test(
  'a connection that never ends its stream is closed in time',
  async (t) => {
    const aged = await startGrpcServer({
      host: '127.0.0.1',
      port: 0,
      decider,
      logger: pino({ level: 'silent' }),
      connectionAge: { maxMs: 300, graceMs: 300 },
    });
    t.teardown(() => aged.close(0));
    const session = connectHttp2(`http://127.0.0.1:${aged.port}`);
    session.on('error', () => {});
    const closed = new Promise<number>((resolve) =>
      session.once('close', () => resolve(performance.now())),
    );
    const started = performance.now();
    const stream = unendedCheck(session);
    stream.write(Buffer.from([0, 0, 0, 0, 0]));
    const after = (await closed) - started;
    // Age 300 ms ±10%, then 300 ms of grace.
    t.ok(after >= 500 && after < 3000, `closed after ${after.toFixed(0)} ms`);

    const again = new grpc.Client(
      `127.0.0.1:${aged.port}`,
      grpc.credentials.createInsecure(),
    );
    t.teardown(() => again.close());
    const result = await callRaw(
      again,
      CHECK,
      encodeCheckRequest({ http: {} }),
    );
    t.ok(result.ok, 'a new connection is served');
  },
);
