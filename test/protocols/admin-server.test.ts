/**
 * The admin listener faces the pod network: a client that pipelines is
 * cut off, `/metrics` is rendered at most once a second however many ask,
 * and what Node's parser refuses gets Node's own status.
 */
import { connect, type Socket } from 'node:net';
import t, { type Test } from 'tap';
import { createLogger } from '../../src/logger.ts';
import {
  ADMIN_METRICS_MAX_AGE_MS,
  startAdminServer,
  type AdminServer,
} from '../../src/protocols/admin-server.ts';
import { startHttpServer } from '../../src/protocols/http-server.ts';
import { unwritableError } from '../support/unwritable-error.ts';

/** An admin listener whose metrics count their renderings. */
async function counted(
  t: Test,
  render: () => Promise<string> = async () => 'm 1\n',
) {
  let renders = 0;
  const server: AdminServer = await startAdminServer({
    host: '127.0.0.1',
    port: 0,
    logger: createLogger('silent'),
    metrics: async () => {
      renders += 1;
      return { contentType: 'text/plain', body: await render() };
    },
  });
  t.teardown(() => server.close());
  return { server, renders: () => renders };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Writes `text` on a new connection; resolves with what came back. */
function raw(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket: Socket = connect({ host: '127.0.0.1', port });
    let got = '';
    socket.on('data', (d) => (got += d));
    socket.on('close', () => resolve(got));
    socket.on('error', reject);
    socket.write(text);
    setTimeout(() => socket.destroy(), 5000).unref();
  });
}

t.test('pipelined scrapes close the connection, not the process', async (t) => {
  const { server, renders } = await counted(t, async () => {
    await sleep(20);
    return 'x'.repeat(16_000);
  });
  const burst = 'GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n'.repeat(1000);
  const attacks = Array.from({ length: 10 }, () => raw(server.port, burst));

  const started = performance.now();
  const ready = await fetch(`http://127.0.0.1:${server.port}/readyz`);
  await ready.text();
  t.equal(ready.status, 200, 'a probe meanwhile is answered');
  t.ok(performance.now() - started < 1000, 'and not kept waiting');

  const answers = await Promise.all(attacks);
  for (const answer of answers) {
    const count = answer.split('HTTP/1.1 ').length - 1;
    t.ok(count <= 1, `at most the first answer (${count}), then closed`);
  }
  t.ok(renders() <= 2, `${renders()} renderings for 10,000 requests`);
});

t.test('a rendering serves every scrape for a second', async (t) => {
  let fail = true;
  const { server, renders } = await counted(t, async () => {
    if (fail) {
      fail = false;
      throw new Error('store closed');
    }
    return `m ${Date.now()}\n`;
  });
  const get = () =>
    fetch(`http://127.0.0.1:${server.port}/metrics`).then(async (r) => ({
      status: r.status,
      body: await r.text(),
    }));

  t.equal((await get()).status, 503, 'a failed rendering');
  const first = await get();
  t.equal(first.status, 200, 'is not reused');
  const again = await Promise.all([get(), get(), get()]);
  t.same(
    again.map((a) => a.body),
    [first.body, first.body, first.body],
  );
  t.equal(renders(), 2);

  await sleep(ADMIN_METRICS_MAX_AGE_MS + 100);
  t.not((await get()).body, first.body, 'a second later, a new one');
  t.equal(renders(), 3);
});

t.test("Node's refusals keep Node's statuses", async (t) => {
  const { server } = await counted(t);
  const big = await raw(
    server.port,
    `GET /healthz HTTP/1.1\r\nHost: a\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
  );
  t.match(big, /^HTTP\/1\.1 431 /);
  const bad = await raw(server.port, 'NOT HTTP\r\n\r\n');
  t.match(bad, /^HTTP\/1\.1 400 /);
});

t.test('the HTTP listener shares a rendering among scrapes', async (t) => {
  let renders = 0;
  const server = await startHttpServer({
    host: '127.0.0.1',
    port: 0,
    logger: createLogger('silent'),
    decider: { decide: () => Promise.reject(new Error('unused')) },
    metrics: async () => {
      renders += 1;
      await sleep(50);
      return { contentType: 'text/plain', body: `m ${renders}\n` };
    },
  });
  t.teardown(() => server.close(0));
  const get = () =>
    fetch(`http://127.0.0.1:${server.port}/metrics`).then((r) => r.text());

  const together = await Promise.all(Array.from({ length: 20 }, get));
  t.equal(new Set(together).size, 1, 'twenty at once, one rendering');
  t.equal(renders, 1);
  t.equal(await get(), 'm 2\n', 'the next scrape after it, fresh');
});

t.test('a failure the log cannot write still gets its 503', async (t) => {
  const lines: string[] = [];
  const server = await startAdminServer({
    host: '127.0.0.1',
    port: 0,
    logger: createLogger('info', { write: (line: string) => lines.push(line) }),
    metrics: () => {
      return Promise.reject(unwritableError('store closed'));
    },
  });
  t.teardown(() => server.close());
  const res = await fetch(`http://127.0.0.1:${server.port}/metrics`);
  t.equal(res.status, 503);
  await res.text();
  await sleep(50);
  t.match(
    lines.join(''),
    /could not be read.*"route":"\/metrics"|"route":"\/metrics".*could not be read/,
  );
});

t.test(
  'a process that needs a restart: /healthz 503 on both listeners, /readyz as it was',
  async (t) => {
    const routes = { ready: () => true, alive: () => false };
    const admin = await startAdminServer({
      host: '127.0.0.1',
      port: 0,
      logger: createLogger('silent'),
      ...routes,
    });
    t.teardown(() => admin.close());
    const http = await startHttpServer({
      host: '127.0.0.1',
      port: 0,
      logger: createLogger('silent'),
      decider: { decide: () => Promise.reject(new Error('not asked')) },
      ...routes,
    });
    t.teardown(() => http.close(0));
    for (const port of [admin.port, http.port]) {
      const health = await fetch(`http://127.0.0.1:${port}/healthz`);
      t.equal(health.status, 503, `/healthz on ${port}`);
      t.match(await health.text(), /restart needed/);
      const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
      t.equal(ready.status, 200, `/readyz on ${port}`);
      await ready.text();
    }
  },
);
