/**
 * The listeners of a running Paygress bound their connections as
 * configured (`http.maxConnections`, `grpc.maxConnections`, a fixed limit
 * on the admin listener), each close counted in
 * `paygress_connections_dropped_total`, and close a connection that says
 * nothing in time.
 */
import { get } from 'node:http';
import http2 from 'node:http2';
import { connect, type Socket } from 'node:net';
import t, { type Test } from 'tap';
import { ADMIN_CONNECTIONS } from '../../src/protocols/admin-server.ts';
import { FIRST_BYTES_MS } from '../../src/protocols/grpc-server.ts';
import { keptLog, send, startStack } from '../support/stack.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** An open connection to `host:port` and when it closed (ms after open). */
function open(
  host: string,
  port: number,
): Promise<{ socket: Socket; closed: Promise<number> }> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const socket = connect({ host, port });
    const closed = new Promise<number>((r) =>
      socket.once('close', () => r(performance.now() - start)),
    );
    socket.once('connect', () => resolve({ socket, closed }));
    socket.once('error', reject);
  });
}

/**
 * Holds two connections to `port`, sees a third closed at once, then
 * lets the two go.
 */
async function overflow(t: Test, port: number): Promise<void> {
  const held = [await open('127.0.0.1', port), await open('127.0.0.1', port)];
  await sleep(50);
  const over = await open('127.0.0.1', port);
  const closedAfter = await Promise.race([over.closed, sleep(3000)]);
  t.type(closedAfter, 'number', 'the third connection is closed at once');

  for (const h of held) h.socket.destroy();
  await Promise.all(held.map((h) => h.closed));
  await sleep(50);
}

/** The series of `listener`, read on a connection of its own. */
async function metric(url: string, listener: string): Promise<number> {
  const text = await new Promise<string>((resolve, reject) =>
    get(url, { agent: false }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve(body));
    }).on('error', reject),
  );
  const line = new RegExp(
    `^paygress_connections_dropped_total\\{listener="${listener}"\\} (\\d+)$`,
    'm',
  ).exec(text);
  if (line === null) throw new Error(`no series for ${listener}`);
  return Number(line[1]);
}

t.test('http.maxConnections bounds the HTTP listener', async (t) => {
  const log = keptLog('warn');
  const s = await startStack({
    env: { PAYGRESS_HTTP_MAX_CONNECTIONS: '2' },
    logger: log.logger,
  });
  t.teardown(() => s.close());
  t.equal(await metric(`${s.base}/metrics`, 'http'), 0, 'counted from 0');

  await overflow(t, s.app.httpPort);
  t.equal(await metric(`${s.base}/metrics`, 'http'), 1, 'and counted');
  t.match(
    log.lines.find((l) => String(l.msg).startsWith('connections closed')),
    {
      listener: 'http',
      limit: 2,
      msg: /limit \(http\.maxConnections, PAYGRESS_HTTP_MAX_CONNECTIONS\)$/,
    },
  );
  t.equal((await send(s, 'forward')).status, 402, 'then served as before');
});

t.test('grpc.maxConnections bounds the gRPC listener', async (t) => {
  const s = await startStack({ env: { PAYGRESS_GRPC_MAX_CONNECTIONS: '2' } });
  t.teardown(() => s.close());
  t.equal(await metric(`${s.base}/metrics`, 'grpc'), 0, 'counted from 0');

  await overflow(t, s.app.grpcPort);
  t.equal(await metric(`${s.base}/metrics`, 'grpc'), 1, 'and counted');
  const check = await send(s, 'ext-authz');
  t.equal(check.status, 402, 'then checks are answered as before');
});

t.test('a connection reset before or after its preface', async (t) => {
  const s = await startStack({});
  t.teardown(() => s.close());
  const preface = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';
  for (const sent of ['', 'P', preface.slice(0, 23), preface]) {
    const client = await open('127.0.0.1', s.app.grpcPort);
    client.socket.on('error', () => {});
    if (sent) client.socket.write(sent);
    await sleep(50);
    client.socket.resetAndDestroy();
    await client.closed;
  }
  await sleep(100);
  const check = await send(s, 'ext-authz');
  t.equal(check.status, 402, 'leaves the listener answering');
});

t.test(
  'the gRPC and admin listeners close a connection that says nothing',
  async (t) => {
    const s = await startStack({
      env: { PAYGRESS_ADMIN_HOST: '127.0.0.1', PAYGRESS_ADMIN_PORT: '0' },
    });
    t.teardown(() => s.close());
    const admin = s.app.adminPort!;
    const metrics = `http://127.0.0.1:${admin}/metrics`;
    t.equal(await metric(metrics, 'admin'), 0, 'counted from 0');
    t.equal(await metric(metrics, 'grpc'), 0);

    // A client that spoke keeps its connection while idle: Envoy's, between
    // checks.
    const envoy = http2.connect(`http://127.0.0.1:${s.app.grpcPort}`);
    let envoyClosed = false;
    envoy.on('close', () => (envoyClosed = true));
    envoy.on('error', () => {});
    await healthCheck(envoy);

    // All but the last byte of the HTTP/2 preface, then nothing.
    const trickle = await open('127.0.0.1', s.app.grpcPort);
    trickle.socket.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r');
    const limits = [
      [ADMIN_CONNECTIONS.idleMs, await open('127.0.0.1', admin)],
      [FIRST_BYTES_MS, await open('127.0.0.1', s.app.grpcPort)],
      [FIRST_BYTES_MS, trickle],
    ] as const;
    // Not HTTP/2 at all: closed at its first byte.
    const http1 = await open('127.0.0.1', s.app.grpcPort);
    http1.socket.write('GET / HTTP/1.1\r\nHost: a\r\n\r\n');
    t.ok((await http1.closed) < 1000, 'an HTTP/1 request is closed at once');

    const closedAfter = await Promise.all(
      limits.map(([limit, silent]) =>
        Promise.race([silent.closed, sleep(limit + 5000).then(() => Infinity)]),
      ),
    );
    for (const [i, [limit]] of limits.entries()) {
      const after = closedAfter[i]!;
      t.ok(
        after >= limit - 100 && after < limit + 5000,
        `closed after ${Math.round(after)} ms (limit ${limit})`,
      );
    }
    t.notOk(envoyClosed, 'the connection that spoke is kept');
    await healthCheck(envoy);
    envoy.close();
    t.equal(await metric(metrics, 'admin'), 0, 'a timeout is no drop');
    t.equal(await metric(metrics, 'grpc'), 0);
  },
);

/** One gRPC health Check on `session`; resolves once it is answered. */
function healthCheck(session: http2.ClientHttp2Session): Promise<void> {
  return new Promise((resolve, reject) => {
    const stream = session.request({
      ':method': 'POST',
      ':path': '/grpc.health.v1.Health/Check',
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    stream.on('trailers', (trailers) =>
      trailers['grpc-status'] === '0'
        ? resolve()
        : reject(new Error(`grpc-status ${trailers['grpc-status']}`)),
    );
    stream.on('error', reject);
    stream.resume();
    // An empty HealthCheckRequest: the server as a whole.
    stream.end(Buffer.from([0, 0, 0, 0, 0]));
  });
}
