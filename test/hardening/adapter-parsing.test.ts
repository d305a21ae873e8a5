/**
 * The protocol adapters under hostile input. Forward-auth and nginx read a
 * request out of whatever headers arrive; ext_authz reads it out of
 * whatever bytes arrive over gRPC. None may throw, each must hand the core
 * a well-formed host, path and query, and no input may take a listener
 * down or turn into a 500.
 */
import { connect } from 'node:net';
import t from 'tap';
import fc from 'fast-check';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import type { AuthRequest, Decider } from '../../src/core/model.ts';
import { forwardAuthRequest } from '../../src/protocols/forward-auth.ts';
import { nginxAuthRequest } from '../../src/protocols/nginx-auth.ts';
import { startGrpcServer } from '../../src/protocols/grpc-server.ts';
import {
  anyString,
  bytesAsText,
  randomCashuString,
  requestTarget,
} from '../support/arbitraries.ts';
import {
  callRaw,
  decodeCheckResponse,
  encodeCheckRequest,
  encodeHealthCheckRequest,
  decodeHealthCheckResponse,
} from '../support/envoy-wire.ts';
import { startStack } from '../support/stack.ts';

const CHECK = '/envoy.service.auth.v3.Authorization/Check';
const HEALTH = '/grpc.health.v1.Health/Check';

/** Why `request` is not well formed, or undefined when it is. */
function malformation(request: AuthRequest): string | undefined {
  if (!request.path.startsWith('/')) return `path ${request.path} lacks /`;
  // A `#` stays where it was sent, for pricing to refuse in a path.
  if (request.path.includes('?')) return `path ${request.path} has ?`;
  if (request.host !== request.host.trim().toLowerCase()) {
    return `host ${request.host} is not trimmed and lower-case`;
  }
  // One colon and no brackets would be a port left on the host.
  if (/^[^:[\]]*:[^:]*$/.test(request.host)) {
    return `host ${request.host} keeps a port`;
  }
  return undefined;
}

const headerValue = fc.oneof(
  anyString(120),
  bytesAsText(120),
  requestTarget,
  fc.constantFrom('', ' ', 'API.Example:8443', '[::1]:80', '[::1', '::1'),
);
const values = fc.oneof(
  headerValue,
  fc.array(headerValue, { minLength: 1, maxLength: 3 }),
);

/** A fake IncomingMessage: only what the adapters read. */
const incoming = fc.record({
  url: fc.option(requestTarget, { nil: undefined }),
  method: fc.option(fc.string({ maxLength: 10 }), { nil: undefined }),
  headers: fc.dictionary(
    fc.oneof(
      fc.constantFrom(
        'host',
        'x-forwarded-uri',
        'x-forwarded-host',
        'x-forwarded-method',
        'x-forwarded-proto',
        'x-forwarded-for',
        'x-original-url',
        'x-original-uri',
        'x-original-method',
        'x-real-ip',
        'x-request-id',
        'x-cashu',
        '__proto__',
      ),
      fc.string({ maxLength: 12 }),
    ),
    values,
    { maxKeys: 8 },
  ),
  socket: fc.record({
    remoteAddress: fc.option(fc.ipV4(), { nil: undefined }),
  }),
});

for (const [name, read] of [
  ['forwardAuthRequest', forwardAuthRequest],
  ['nginxAuthRequest', nginxAuthRequest],
] as const) {
  t.test(`${name}: never throws, always well formed`, async (t) => {
    fc.assert(
      fc.property(incoming, (req) => {
        const request = read(req as never);
        const problem = malformation(request);
        if (problem !== undefined) throw new Error(problem);
      }),
      { numRuns: 3000 },
    );
    t.pass('3000 requests');
  });
}

t.test('a raw UTF-8 request target reads as UTF-8, as sent', async (t) => {
  // Node hands header values over as latin1, one character per byte.
  const sent = (text: string) => Buffer.from(text, 'utf8').toString('latin1');
  const pathOf = (
    read: typeof forwardAuthRequest,
    headers: Record<string, string>,
  ) =>
    read({
      url: '/auth',
      headers,
      socket: { remoteAddress: '127.0.0.1' },
    } as never).path;

  t.equal(
    pathOf(forwardAuthRequest, { 'x-forwarded-uri': sent('/prémium/x?q=é') }),
    '/prémium/x',
  );
  t.equal(
    pathOf(nginxAuthRequest, {
      'x-original-url': sent('https://app.example/prémium/x'),
    }),
    '/prémium/x',
  );
  // Bytes that are not UTF-8 stay as they came.
  t.equal(
    pathOf(forwardAuthRequest, { 'x-forwarded-uri': '/caf\u00e9' }),
    '/caf\u00e9',
  );
});

t.test(
  "the nginx path reads the client's Host as nginx routes on it",
  async (t) => {
    const read = (headers: Record<string, string>) =>
      nginxAuthRequest({
        url: '/auth/nginx',
        headers,
        socket: { remoteAddress: '127.0.0.1' },
      } as never);
    // ingress-nginx: X-Original-URL is $scheme://$http_host$request_uri.
    const odd = read({ 'x-original-url': 'http://app.example.com:1?/premium' });
    t.equal(odd.path, '/premium', 'the path begins after the Host');
    t.match(odd.ambiguity, /X-Original-URL's host holds a character/);
    const colons = read({ 'x-original-url': 'http://App.Example.com:1:2/x' });
    t.equal(colons.host, 'app.example.com', 'up to the first colon');
    t.equal(colons.ambiguity, undefined);
    t.equal(
      read({ 'x-original-url': 'http://[2001:db8::1]:8080/x' }).host,
      '[2001:db8::1]',
    );
    t.equal(read({ host: 'app.example.com:1:2' }).host, 'app.example.com');
  },
);

t.test('ext_authz over gRPC: arbitrary CheckRequests and bytes', async (t) => {
  const seen: AuthRequest[] = [];
  const decider: Decider = {
    decide: async (request) => {
      seen.push(request);
      return {
        kind: 'deny',
        reason: 'PAYGRESS_PAYMENT_REQUIRED',
        message: '',
        fault: 'payer',
      };
    },
  };
  const server = await startGrpcServer({
    host: '127.0.0.1',
    port: 0,
    decider,
    logger: pino({ level: 'silent' }),
  });
  const client = new grpc.Client(
    `127.0.0.1:${server.port}`,
    grpc.credentials.createInsecure(),
  );
  t.teardown(async () => {
    client.close();
    await server.close(1000);
  });

  const pair = fc.tuple(fc.string({ maxLength: 20 }), headerValue);
  const spec = fc.record(
    {
      id: fc.string({ maxLength: 40 }),
      method: fc.string({ maxLength: 10 }),
      headers: fc.array(pair, { maxLength: 6 }),
      path: requestTarget,
      host: headerValue,
      scheme: fc.string({ maxLength: 8 }),
      headerMap: fc.array(
        fc.record(
          {
            key: fc.string({ maxLength: 20 }),
            value: headerValue,
            rawValue: fc.uint8Array({ maxLength: 60 }).map(Buffer.from),
          },
          { requiredKeys: ['key'] },
        ),
        { maxLength: 4 },
      ),
    },
    { requiredKeys: [] },
  );
  const message = fc.oneof(
    { weight: 3, arbitrary: spec.map((http) => encodeCheckRequest({ http })) },
    fc.uint8Array({ maxLength: 300 }).map(Buffer.from),
    spec.map((http) => {
      // A valid request cut short at a random byte.
      const bytes = encodeCheckRequest({ http });
      return bytes.subarray(0, Math.floor(bytes.length / 2));
    }),
  );

  const codes = new Set<string>();
  await fc.assert(
    fc.asyncProperty(message, async (bytes) => {
      seen.length = 0;
      const result = await callRaw(client, CHECK, bytes);
      codes.add(result.ok ? 'ok' : grpc.status[result.error.code]!);
      if (result.ok) decodeCheckResponse(result.bytes);
      for (const request of seen) {
        const problem = malformation(request);
        if (problem !== undefined) throw new Error(problem);
      }
    }),
    { numRuns: 600 },
  );
  t.comment(`answers seen: ${[...codes].join(', ')}`);

  const health = await callRaw(client, HEALTH, encodeHealthCheckRequest(''));
  t.ok(health.ok, 'the server still answers');
  if (health.ok) t.equal(decodeHealthCheckResponse(health.bytes), 1);
});

t.test('HTTP: arbitrary and oversized header values', async (t) => {
  const stack = await startStack({ price: 100 });
  t.teardown(() => stack.close());
  const port = stack.app.httpPort;

  const value = fc.oneof(
    randomCashuString,
    bytesAsText(200),
    fc
      .tuple(
        fc.constantFrom(100, 16_000, 17_000, 33_000, 70_000),
        randomCashuString,
      )
      .map(([size, token]) => token.padEnd(size, 'A')),
  );
  const request = fc.record({
    route: fc.constantFrom('/auth/forward', '/auth/nginx'),
    name: fc.constantFrom(
      'X-Cashu',
      'Authorization',
      'X-Forwarded-Uri',
      'X-Original-URL',
      'Host',
      'X-Anything',
    ),
    value,
  });

  const statuses = new Map<number, number>();
  await fc.assert(
    fc.asyncProperty(request, async ({ route, name, value }) => {
      const answer = await rawRequest(port, route, name, value);
      statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
      if (![400, 401, 402, 431, 503].includes(answer.status)) {
        throw new Error(`answered ${answer.status}`);
      }
      if (answer.status !== 400 && answer.status !== 431) {
        if (
          !/^PAYGRESS_[A-Z_]+$/.test(answer.headers['x-paygress-reason'] ?? '')
        ) {
          throw new Error(`${answer.status} without a reason header`);
        }
      }
    }),
    { numRuns: 300 },
  );
  t.comment(`statuses: ${JSON.stringify(Object.fromEntries(statuses))}`);

  const health = await fetch(`${stack.base}/healthz`);
  t.equal(health.status, 200, 'the server stays up');
});

/**
 * One HTTP/1.1 request written byte for byte (fetch refuses the bytes we
 * want to send), read until the server closes the connection.
 */
function rawRequest(
  port: number,
  route: string,
  name: string,
  value: string,
): Promise<{ status: number; headers: Record<string, string> }> {
  const head =
    `GET ${route} HTTP/1.1\r\nHost: paygress.test\r\n` +
    `X-Forwarded-Uri: /premium\r\nX-Original-URL: https://app.example/premium\r\n` +
    `${name}: `;
  const request = Buffer.concat([
    Buffer.from(head, 'latin1'),
    Buffer.from(value, 'latin1'),
    Buffer.from('\r\nConnection: close\r\n\r\n', 'latin1'),
  ]);

  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.setTimeout(10_000, () => socket.destroy(new Error('no answer')));
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('error', (err) => {
      // A server may close on us mid-write once it has answered.
      if (chunks.length > 0) finish();
      else reject(err);
    });
    socket.on('end', finish);
    socket.write(request);

    function finish() {
      socket.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      const [statusLine = '', ...lines] = text
        .split('\r\n\r\n')[0]!
        .split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const colon = line.indexOf(':');
        headers[line.slice(0, colon).toLowerCase()] = line
          .slice(colon + 1)
          .trim();
      }
      resolve({ status: Number(statusLine.split(' ')[1]), headers });
    }
  });
}
