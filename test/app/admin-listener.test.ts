/**
 * The admin listener: probes and scrapes reach `/healthz`, `/readyz` and
 * `/metrics` on an address of their own, while the auth listeners stay
 * on loopback. It answers nothing else, takes `/metrics` from the HTTP
 * listener, and answers probes through the whole shutdown.
 */
import { connect } from 'node:net';
import t, { type Test } from 'tap';
import { mintToken } from '../support/wallet.ts';
import { send, startStack, type Stack } from '../support/stack.ts';

/** An admin listener on 127.0.0.2, apart from the auth listeners' 127.0.0.1. */
async function stackWithAdmin(t: Test): Promise<Stack & { admin: string }> {
  const s = await startStack({
    env: { PAYGRESS_ADMIN_HOST: '127.0.0.2', PAYGRESS_ADMIN_PORT: '0' },
  });
  t.teardown(() => s.close());
  const port = s.app.adminPort;
  if (port === undefined) throw new Error('no admin listener started');
  return { ...s, admin: `http://127.0.0.2:${port}` };
}

async function get(url: string): Promise<{ status: number; body: string }> {
  const res = await fetch(url);
  return { status: res.status, body: await res.text() };
}

/** Whether a TCP connection to `host:port` is accepted. */
function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

t.test('the admin listener serves the operator routes alone', async (t) => {
  const s = await stackWithAdmin(t);
  await send(s, 'forward');

  t.same(await get(`${s.admin}/healthz`), { status: 200, body: 'ok\n' });
  t.same(await get(`${s.admin}/readyz`), { status: 200, body: 'ready\n' });
  const metrics = await get(`${s.admin}/metrics`);
  t.equal(metrics.status, 200);
  t.match(
    metrics.body,
    /paygress_decisions_total\{protocol="forward",outcome="deny",reason="PAYGRESS_PAYMENT_REQUIRED"\} 1/,
    'the decisions made on the HTTP listener',
  );

  for (const path of ['/auth/forward', '/auth/nginx', '/']) {
    const res = await get(`${s.admin}${path}`);
    t.equal(res.status, 404, `${path} is no route of the admin listener`);
  }
  const again = await get(`${s.admin}/metrics`);
  t.match(
    again.body,
    /paygress_decisions_total\{protocol="forward",outcome="deny",reason="PAYGRESS_PAYMENT_REQUIRED"\} 1\n/,
    'nothing asked of it was decided',
  );
});

t.test('with an admin listener, /metrics leaves the HTTP one', async (t) => {
  const s = await stackWithAdmin(t);
  t.equal((await get(`${s.base}/metrics`)).status, 404);
  t.equal((await get(`${s.base}/healthz`)).status, 200, 'health stays');
  t.equal((await get(`${s.base}/readyz`)).status, 200, 'readiness stays');

  const token = await mintToken(s.mint.url, 100);
  const paid = await send(s, 'forward', { 'X-Cashu': token });
  t.equal(paid.allowed, true, 'the HTTP listener still decides');
});

t.test('each listener takes connections on its own address only', async (t) => {
  const s = await stackWithAdmin(t);
  const admin = s.app.adminPort ?? 0;
  t.ok(await accepts('127.0.0.2', admin));
  t.notOk(await accepts('127.0.0.1', admin), 'admin: not on 127.0.0.1');
  t.ok(await accepts('127.0.0.1', s.app.httpPort));
  t.notOk(await accepts('127.0.0.2', s.app.httpPort), 'http: loopback only');
  t.notOk(await accepts('127.0.0.2', s.app.grpcPort), 'grpc: loopback only');
});

t.test(
  'during shutdown the admin listener says alive, not ready',
  async (t) => {
    const s = await stackWithAdmin(t);
    const token = await mintToken(s.mint.url, 100);
    // A payment the mint holds up keeps the shutdown waiting for it.
    s.mint.setFault('swap', { kind: 'delay', ms: 800 });
    const inFlight = send(s, 'forward', { 'X-Cashu': token });
    await new Promise((r) => setTimeout(r, 100));
    const closing = s.app.close();
    await new Promise((r) => setTimeout(r, 100));

    t.equal((await get(`${s.admin}/healthz`)).status, 200, 'alive');
    t.same(await get(`${s.admin}/readyz`), {
      status: 503,
      body: 'not ready: shutting down\n',
    });
    t.notOk(await accepts('127.0.0.1', s.app.httpPort), 'auth closed first');

    t.equal((await inFlight).allowed, true, 'the payment got its answer');
    await closing;
    t.notOk(await accepts('127.0.0.2', s.app.adminPort ?? 0), 'closed last');
  },
);

t.test('a port another listener holds stops the start cleanly', async (t) => {
  const first = await stackWithAdmin(t);
  const taken = first.app.adminPort ?? 0;
  await t.rejects(
    startStack({
      mint: first.mint,
      dataDir: t.testdir(),
      env: {
        PAYGRESS_ADMIN_HOST: '127.0.0.2',
        PAYGRESS_ADMIN_PORT: `${taken}`,
      },
    }),
    { code: 'EADDRINUSE' },
  );
  // The failed start left nothing listening that would keep tap waiting;
  // the first Paygress still answers.
  t.equal((await get(`${first.admin}/healthz`)).status, 200);
});
