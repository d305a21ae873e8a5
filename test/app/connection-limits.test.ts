/**
 * The listeners of a running Paygress bound their connections as
 * configured: `http.maxConnections` on the HTTP listener, a fixed limit
 * and a first-request time on the admin listener, each close counted in
 * `paygress_connections_dropped_total`.
 */
import { get } from 'node:http';
import { connect, type Socket } from 'node:net';
import t from 'tap';
import { ADMIN_CONNECTIONS } from '../../src/protocols/admin-server.ts';
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

  const held = [
    await open('127.0.0.1', s.app.httpPort),
    await open('127.0.0.1', s.app.httpPort),
  ];
  await sleep(50);
  const over = await open('127.0.0.1', s.app.httpPort);
  const closedAfter = await Promise.race([over.closed, sleep(3000)]);
  t.type(closedAfter, 'number', 'the third connection is closed at once');

  for (const h of held) h.socket.destroy();
  await Promise.all(held.map((h) => h.closed));
  await sleep(50);
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

t.test(
  'the admin listener closes a connection that asks nothing',
  async (t) => {
    const s = await startStack({
      env: { PAYGRESS_ADMIN_HOST: '127.0.0.1', PAYGRESS_ADMIN_PORT: '0' },
    });
    t.teardown(() => s.close());
    const admin = s.app.adminPort!;
    const metrics = `http://127.0.0.1:${admin}/metrics`;
    t.equal(await metric(metrics, 'admin'), 0, 'counted from 0');
    t.equal(await metric(metrics, 'http'), 0);

    const silent = await open('127.0.0.1', admin);
    const limit = ADMIN_CONNECTIONS.firstRequestMs;
    const closedAfter = await Promise.race([
      silent.closed,
      sleep(limit + 5000).then(() => Infinity),
    ]);
    t.ok(
      closedAfter >= limit - 100 && closedAfter < limit + 5000,
      `closed after ${Math.round(closedAfter)} ms (limit ${limit})`,
    );
    t.equal(await metric(metrics, 'admin'), 0, 'a timeout is no drop');
  },
);
