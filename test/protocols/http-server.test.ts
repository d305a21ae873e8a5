/**
 * Whatever fails while answering, the HTTP listener answers 503 with a
 * reason and stays up: a fault of ours never crashes the sidecar.
 */
import t from 'tap';
import { createLogger } from '../../src/logger.ts';
import { startHttpServer } from '../../src/protocols/http-server.ts';

t.test('a failing handler gives 503, and the server stays up', async (t) => {
  const server = await startHttpServer({
    host: '127.0.0.1',
    port: 0,
    logger: createLogger('silent'),
    decider: {
      decide: () => Promise.reject(new Error('bug in the decider')),
    },
    metrics: () => Promise.reject(new Error('store closed')),
  });
  t.teardown(() => server.close(0));
  const base = `http://127.0.0.1:${server.port}`;

  const metrics = await fetch(`${base}/metrics`);
  t.equal(metrics.status, 503);
  t.equal(metrics.headers.get('x-paygress-reason'), 'PAYGRESS_INTERNAL');
  await metrics.text();

  const auth = await fetch(`${base}/auth/forward`);
  t.equal(auth.status, 503, 'a decider bug fails closed');
  t.equal(auth.headers.get('x-paygress-reason'), 'PAYGRESS_INTERNAL');
  await auth.text();

  const health = await fetch(`${base}/healthz`);
  t.equal(health.status, 200, 'still serving');
  await health.text();
});
