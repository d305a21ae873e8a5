import t from 'tap';
import type { Test } from 'tap';
import * as grpc from '@grpc/grpc-js';
import { once } from 'node:events';
import { setTimeout } from 'node:timers/promises';
import { connect } from 'node:net';
import * as http2 from 'node:http2';
import { pino } from 'pino';
import type { Decider } from '../../src/core/model.ts';
import {
  MAX_SERVICE_NAME,
  MAX_WATCHERS,
} from '../../src/protocols/grpc-health.ts';
import { LIMITS, startGrpcServer } from '../../src/protocols/grpc-server.ts';
import type { GrpcServer } from '../../src/protocols/grpc-server.ts';
import {
  callRaw,
  decodeCheckResponse,
  decodeHealthCheckResponse,
  encodeCheckRequest,
  encodeHealthCheckRequest,
} from '../support/envoy-wire.ts';

const CHECK = '/grpc.health.v1.Health/Check';
const WATCH = '/grpc.health.v1.Health/Watch';
const AUTHZ_CHECK = '/envoy.service.auth.v3.Authorization/Check';
const SERVING = 1;
const NOT_SERVING = 2;
const SERVICE_UNKNOWN = 3;
const EXT_AUTHZ = 'envoy.service.auth.v3.Authorization';

const identity = (b: Buffer): Buffer => b;
const logger = pino({ level: 'silent' });
// Checks wait on `gate` so a test can hold one open across a shutdown.
let gate: Promise<void> = Promise.resolve();
let entered = () => {};
const decider: Decider = {
  decide: async () => {
    entered();
    await gate;
    return {
      kind: 'allow',
      amount: 0,
      unit: 'sat',
      upstreamHeaders: {},
      clientHeaders: {},
    };
  },
};

async function start(
  t: Test,
): Promise<{ server: GrpcServer; client: grpc.Client }> {
  const server = await startGrpcServer({
    host: '127.0.0.1',
    port: 0,
    decider,
    logger,
  });
  const client = new grpc.Client(
    `127.0.0.1:${server.port}`,
    grpc.credentials.createInsecure(),
  );
  t.teardown(async () => {
    client.close();
    await server.close(500);
  });
  return { server, client };
}

async function healthOf(client: grpc.Client, service: string): Promise<number> {
  const result = await callRaw(
    client,
    CHECK,
    encodeHealthCheckRequest(service),
  );
  if (!result.ok) throw result.error;
  return decodeHealthCheckResponse(result.bytes);
}

t.test('Check answers SERVING, then NOT_SERVING once set', async (t) => {
  const { server, client } = await start(t);
  t.equal(await healthOf(client, ''), SERVING);
  t.equal(await healthOf(client, EXT_AUTHZ), SERVING);

  server.health.setStatus('NOT_SERVING');
  t.equal(await healthOf(client, ''), NOT_SERVING);
  t.equal(await healthOf(client, EXT_AUTHZ), NOT_SERVING);

  server.health.setStatus('SERVING', EXT_AUTHZ);
  t.equal(await healthOf(client, EXT_AUTHZ), SERVING);
  t.equal(await healthOf(client, ''), NOT_SERVING, 'only the named one');
});

t.test('Check on an unknown service answers NOT_FOUND', async (t) => {
  const { client } = await start(t);
  const result = await callRaw(client, CHECK, encodeHealthCheckRequest('nope'));
  t.equal(
    result.ok ? grpc.status.OK : result.error.code,
    grpc.status.NOT_FOUND,
  );
});

t.test('Watch streams the current status and every change', async (t) => {
  const { server, client } = await start(t);
  const seen: number[] = [];
  const call = client.makeServerStreamRequest(
    WATCH,
    identity,
    identity,
    encodeHealthCheckRequest(''),
  );
  const nextStatus = () =>
    new Promise<void>((resolve) => call.once('data', () => resolve()));
  call.on('data', (b: Buffer) => seen.push(decodeHealthCheckResponse(b)));
  call.on('error', () => {});

  await nextStatus();
  server.health.setStatus('SERVING');
  server.health.setStatus('NOT_SERVING');
  await nextStatus();
  t.same(seen, [SERVING, NOT_SERVING], 'no repeat for an unchanged status');

  const ended = new Promise<void>((resolve) => call.on('end', () => resolve()));
  await server.close(500);
  await ended;
  t.pass('close ends the Watch stream');
});

t.test('Watch streams that end leave nothing behind', async (t) => {
  const { server, client } = await start(t);
  const watch = (name: string) => {
    const call = client.makeServerStreamRequest(
      WATCH,
      identity,
      identity,
      encodeHealthCheckRequest(name),
    );
    call.on('error', () => {});
    return new Promise<grpc.ClientReadableStream<Buffer>>((resolve) =>
      call.once('data', () => resolve(call)),
    );
  };
  for (let i = 0; i < 50; i++) {
    const call = await watch(`name-${i}`);
    call.cancel();
  }
  for (let i = 0; i < 40 && server.health.watchStats().streams > 0; i++) {
    await setTimeout(25);
  }
  t.same(server.health.watchStats(), { streams: 0, names: 0 });

  const kept = await watch('');
  t.same(server.health.watchStats(), { streams: 1, names: 1 });
  kept.cancel();
});

t.test('overlong names and too many watchers are refused', async (t) => {
  const { server, client } = await start(t);
  // Watchers over enough connections: one carries at most the listener's
  // streams per connection, and a stream beyond that waits in the client.
  const connection = () => {
    const c = new grpc.Client(
      `127.0.0.1:${server.port}`,
      grpc.credentials.createInsecure(),
      { 'grpc.use_local_subchannel_pool': 1 },
    );
    t.teardown(() => c.close());
    return c;
  };
  const perConnection = LIMITS['grpc.max_concurrent_streams'];
  const watchers = Array.from(
    { length: Math.ceil(MAX_WATCHERS / perConnection) },
    connection,
  );
  const long = 'x'.repeat(MAX_SERVICE_NAME + 1);
  const check = await callRaw(client, CHECK, encodeHealthCheckRequest(long));
  t.equal(check.ok ? 0 : check.error.code, grpc.status.INVALID_ARGUMENT);

  const refused = (name: string) =>
    new Promise<number>((resolve) => {
      const call = client.makeServerStreamRequest(
        WATCH,
        identity,
        identity,
        encodeHealthCheckRequest(name),
      );
      call.on('data', () => {});
      call.on('error', (err: grpc.ServiceError) => resolve(err.code));
    });
  t.equal(await refused(long), grpc.status.INVALID_ARGUMENT);

  const open: grpc.ClientReadableStream<Buffer>[] = [];
  await Promise.all(
    Array.from(
      { length: MAX_WATCHERS },
      (_, i) =>
        new Promise<void>((resolve) => {
          const call = watchers[
            Math.floor(i / perConnection)
          ]!.makeServerStreamRequest(
            WATCH,
            identity,
            identity,
            encodeHealthCheckRequest(''),
          );
          call.on('error', () => {});
          call.once('data', () => resolve());
          open.push(call);
        }),
    ),
  );
  t.equal(await refused(''), grpc.status.RESOURCE_EXHAUSTED);
  for (const call of open) call.cancel();
});

t.test('Watch on an unknown service says SERVICE_UNKNOWN', async (t) => {
  const { server, client } = await start(t);
  const call = client.makeServerStreamRequest(
    WATCH,
    identity,
    identity,
    encodeHealthCheckRequest('later'),
  );
  const statuses: number[] = [];
  call.on('error', () => {});
  await new Promise<void>((resolve) =>
    call.on('data', (b: Buffer) => {
      statuses.push(decodeHealthCheckResponse(b));
      if (statuses.length === 1) server.health.setStatus('SERVING', 'later');
      if (statuses.length === 2) resolve();
    }),
  );
  t.same(statuses, [SERVICE_UNKNOWN, SERVING]);
  call.cancel();
});

t.test(
  'close lets a running check finish, then stops the server',
  async (t) => {
    const { server, client } = await start(t);
    let release = () => {};
    gate = new Promise((resolve) => (release = resolve));
    const arrived = new Promise<void>((resolve) => (entered = resolve));
    const running = callRaw(
      client,
      AUTHZ_CHECK,
      encodeCheckRequest({ http: { path: '/' } }),
    );
    await arrived;

    const closed = server.close(5000);
    const health = await callRaw(client, CHECK, encodeHealthCheckRequest(''));
    t.equal(health.ok, false, 'no new calls once closing');
    release();

    const result = await running;
    t.ok(result.ok, 'the running check completes');
    if (result.ok)
      t.equal(decodeCheckResponse(result.bytes).status?.code ?? 0, 0);
    await closed;
  },
);

t.test(
  'close cancels what is still running after the grace period',
  async (t) => {
    const { server, client } = await start(t);
    gate = new Promise(() => {});
    const arrived = new Promise<void>((resolve) => (entered = resolve));
    const running = callRaw(
      client,
      AUTHZ_CHECK,
      encodeCheckRequest({ http: { path: '/' } }),
    );
    await arrived;

    await server.close(100);
    const result = await running;
    t.equal(result.ok, false, 'the stuck check is cut off');
    gate = Promise.resolve();
  },
);

t.test(
  'close ends idle connections without waiting for the grace period',
  async (t) => {
    const { server } = await start(t);
    const socket = connect(server.port, '127.0.0.1');
    socket.on('error', () => {});
    socket.resume();
    await once(socket, 'connect');
    const ended = once(socket, 'close');
    // Let the server accept it before closing (loopback, well within this).
    await setTimeout(100);

    const started = Date.now();
    await server.close(60_000);
    await ended;
    t.ok(Date.now() - started < 10_000, 'closed long before the grace period');
  },
);

t.test('listens on an IPv6 address', async (t) => {
  const server = await startGrpcServer({
    host: '::1',
    port: 0,
    decider,
    logger,
  }).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'EADDRNOTAVAIL') return undefined;
    throw err;
  });
  if (!server) {
    t.comment('no IPv6 loopback on this machine');
    return;
  }
  const client = new grpc.Client(
    `[::1]:${server.port}`,
    grpc.credentials.createInsecure(),
  );
  t.teardown(async () => {
    client.close();
    await server.close(500);
  });
  t.equal(await healthOf(client, ''), SERVING);
});

t.test('a port in use is an error at start, not later', async (t) => {
  const { server } = await start(t);
  await t.rejects(
    startGrpcServer({ host: '127.0.0.1', port: server.port, decider, logger }),
    { message: /^gRPC cannot listen on 127\.0\.0\.1:\d+: .*EADDRINUSE/ },
  );
});

t.test('one client cannot hold unbounded streams or messages', async (t) => {
  const { server, client } = await start(t);

  // What the server announces in its SETTINGS frame.
  const session = http2.connect(`http://127.0.0.1:${server.port}`);
  t.teardown(() => session.close());
  const [settings] = (await once(session, 'remoteSettings')) as [
    http2.Settings,
  ];
  t.equal(
    settings.maxConcurrentStreams,
    LIMITS['grpc.max_concurrent_streams'],
    'concurrent streams per connection are capped',
  );

  // A Check larger than the limit is refused before it is decoded.
  const limit = LIMITS['grpc.max_receive_message_length'];
  const big = encodeCheckRequest({
    http: {
      method: 'GET',
      path: '/premium',
      headers: [['x-filler', 'a'.repeat(limit)]],
    },
  });
  const refused = await callRaw(client, AUTHZ_CHECK, big);
  t.equal(
    refused.ok ? grpc.status.OK : refused.error.code,
    grpc.status.RESOURCE_EXHAUSTED,
  );
  const small = await callRaw(
    client,
    AUTHZ_CHECK,
    encodeCheckRequest({ http: { method: 'GET', path: '/premium' } }),
  );
  t.ok(small.ok, 'and the connection still serves the next one');
});
