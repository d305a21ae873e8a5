/**
 * A listener's connections are bounded: one that never sends a request is
 * closed after a while, one over the limit as soon as it is accepted, and
 * neither touches a connection that is being answered or kept alive.
 */
import { createServer, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import t, { type Test } from 'tap';
import {
  guardConnections,
  type GuardOptions,
} from '../../src/protocols/connection-guard.ts';
import { keptLog } from '../support/stack.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A guarded server answering `ok` after `delayMs` (or `/slow`: 600 ms). */
async function guarded(
  t: Test,
  limits: Pick<GuardOptions, 'maxConnections' | 'idleMs' | 'maxUnsentBytes'>,
) {
  const log = keptLog('warn');
  let dropped = 0;
  const server: Server = createServer({ keepAliveTimeout: 5000 });
  const admit = guardConnections(server, {
    maxUnsentBytes: 1 << 30,
    ...limits,
    logger: log.logger,
    listener: 'test',
    setting: 'test.max',
    dropped: () => (dropped += 1),
  });
  server.on('request', (req, res) => {
    if (!admit(req, res)) return;
    if (req.url === '/large') return void res.end(Buffer.alloc(32 << 20));
    const delay = req.url === '/slow' ? 600 : 0;
    setTimeout(() => res.end('ok'), delay);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(
    () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  );
  const port = (server.address() as { port: number }).port;
  return { port, log, dropped: () => dropped, server };
}

/** A connection, with when it closed and what it received. */
interface Client {
  readonly socket: Socket;
  readonly closed: Promise<number>;
  received(): string;
}

/** Connections `server` holds now. */
function connections(server: Server): Promise<number> {
  return new Promise((resolve, reject) =>
    server.getConnections((err, count) => (err ? reject(err) : resolve(count))),
  );
}

/**
 * A connection; with `allowHalfOpen`, it stays open after the server's
 * FIN, as a client that never reads may leave it.
 */
function open(port: number, allowHalfOpen = false): Promise<Client> {
  return new Promise((resolve, reject) => {
    const opened = performance.now();
    const socket = connect({ host: '127.0.0.1', port, allowHalfOpen });
    let got = '';
    socket.on('data', (d) => (got += d));
    const closed = new Promise<number>((r) =>
      socket.once('close', () => r(performance.now() - opened)),
    );
    socket.once('error', () => {});
    socket.once('connect', () =>
      resolve({ socket, closed, received: () => got }),
    );
    socket.once('error', reject);
  });
}

/** `promise`'s value, or Infinity once `ms` have passed. */
function within(promise: Promise<number>, ms: number): Promise<number> {
  return Promise.race([promise, sleep(ms).then(() => Infinity)]);
}

const GET = (path: string) => `GET ${path} HTTP/1.1\r\nHost: a\r\n\r\n`;

t.test('a connection that sends nothing is closed', async (t) => {
  const { port } = await guarded(t, {
    maxConnections: 100,
    idleMs: 200,
  });
  const silent = await open(port);
  const closedAfter = await within(silent.closed, 3000);
  t.ok(closedAfter >= 150, `not before its time (${closedAfter} ms)`);
  t.ok(closedAfter < 1500, `soon after it (${closedAfter} ms)`);
  t.equal(silent.received(), '', 'closed without an answer');
});

t.test(
  'requests and kept-alive connections outlive the first-request time',
  async (t) => {
    const { port } = await guarded(t, {
      maxConnections: 100,
      idleMs: 200,
    });
    const client = await open(port);
    let closed = false;
    void client.closed.then(() => (closed = true));

    // Answered after three times the first-request time.
    client.socket.write(GET('/slow'));
    await sleep(800);
    t.match(client.received(), /^HTTP\/1\.1 200 OK[\s\S]*ok$/, 'answered');
    // Idle between requests for longer than the first-request time.
    await sleep(500);
    t.notOk(closed, 'kept alive between requests');
    client.socket.write(GET('/again'));
    await sleep(100);
    t.equal(client.received().match(/HTTP\/1\.1 200/g)?.length, 2);
    t.notOk(closed);
    client.socket.destroy();
  },
);

t.test('a connection that does not read its answer is closed', async (t) => {
  const { port, server } = await guarded(t, {
    maxConnections: 100,
    idleMs: 300,
  });
  const client = await open(port);
  client.socket.pause();
  // A second request behind it: Node clears the timeout for a request on a
  // kept-alive connection, and the guard must set it again.
  client.socket.write(GET('/') + GET('/large'));
  await sleep(100);
  t.equal(await connections(server), 1, 'being answered');
  // A paused client sees nothing; the server's count says it is gone.
  const started = performance.now();
  while ((await connections(server)) > 0 && performance.now() - started < 5000)
    await sleep(50);
  const closedAfter = performance.now() - started;
  t.ok(closedAfter < 3000, `closed after ${Math.round(closedAfter)} ms`);
  client.socket.destroy();
});

t.test('a request behind answers not read closes the connection', async (t) => {
  const { port, server } = await guarded(t, {
    maxConnections: 100,
    idleMs: 60_000,
    maxUnsentBytes: 64 * 1024,
  });
  const client = await open(port);
  client.socket.pause();
  client.socket.write(GET('/large'));
  await sleep(200);
  t.equal(await connections(server), 1, 'an answer not read is no fault');
  client.socket.write(GET('/'));
  await sleep(200);
  t.equal(await connections(server), 0, 'asking for more is');
  client.socket.destroy();
});

t.test('a refused request closes its connection', async (t) => {
  const { port } = await guarded(t, { maxConnections: 100, idleMs: 60_000 });
  const client = await open(port, true);
  // A bad request line, then a byte now and then and nothing read.
  client.socket.write('BAD\r\n\r\n');
  const trickle = setInterval(() => client.socket.write('x'), 100);
  const closedAfter = await within(client.closed, 5000);
  clearInterval(trickle);
  t.ok(closedAfter < 2000, `closed after ${Math.round(closedAfter)} ms`);
});

t.test('over the limit a new connection is closed unread', async (t) => {
  const { port, log, dropped, server } = await guarded(t, {
    maxConnections: 3,
    idleMs: 10_000,
  });
  const held = [await open(port), await open(port), await open(port)];
  // The server counts a connection once it has accepted it.
  await sleep(50);

  const over = [await open(port), await open(port)];
  for (const client of over) {
    client.socket.write(GET('/'));
    await within(client.closed, 3000);
    t.equal(client.received(), '', 'no answer on a connection over the limit');
  }
  t.equal(dropped(), 2, 'each counted');
  const lines = log.lines.filter((l) =>
    String(l.msg).startsWith('connections'),
  );
  t.equal(lines.length, 1, 'one line a minute at most');
  t.match(lines[0], {
    level: 40,
    listener: 'test',
    limit: 3,
    dropped: 1,
    msg: 'connections closed on arrival: the test listener has 3 open, its limit (test.max)',
  });

  // Those held are served, and once one closes a new one is.
  held[0]!.socket.write(GET('/'));
  await sleep(100);
  t.match(held[0]!.received(), /^HTTP\/1\.1 200/);
  held[1]!.socket.destroy();
  await held[1]!.closed;
  await sleep(50);
  const next = await open(port);
  next.socket.write(GET('/'));
  await sleep(100);
  t.match(next.received(), /^HTTP\/1\.1 200/, 'room again');
  t.equal(dropped(), 2);
  for (const c of [...held, next]) c.socket.destroy();

  // The rest of the burst is counted in a line of its own by the end of
  // the minute, or when the listener closes, as here.
  await new Promise<void>((r) => server.close(() => r()));
  const all = log.lines.filter((l) => String(l.msg).startsWith('connections'));
  t.same(
    all.map((l) => l.dropped),
    [1, 1],
    'the second close in its own line',
  );
});
