/**
 * Whatever fails while answering, the HTTP listener answers 503 with a
 * reason and stays up: a fault of ours never crashes the sidecar. Answers
 * to the core's constant decisions are rendered once and reused whole.
 */
import { connect } from 'node:net';
import t from 'tap';
import type { Decision } from '../../src/core/model.ts';
import { createLogger } from '../../src/logger.ts';
import {
  MAX_QUEUED_ANSWERS,
  MAX_QUEUED_BYTES,
  startHttpServer,
  type HttpServer,
  type HttpServerOptions,
} from '../../src/protocols/http-server.ts';
import { unwritableError } from '../support/unwritable-error.ts';

/** A listener on a free loopback port that logs nothing. */
function listen(
  options: Omit<HttpServerOptions, 'host' | 'port' | 'logger'>,
): Promise<HttpServer> {
  return startHttpServer({
    host: '127.0.0.1',
    port: 0,
    logger: createLogger('silent'),
    ...options,
  });
}

/** An allow that delivers the payment `redemptionId`. */
function paidAllow(redemptionId: string): Decision {
  return {
    kind: 'allow',
    amount: 100,
    unit: 'sat',
    upstreamHeaders: {},
    clientHeaders: {},
    redemptionId,
  };
}

/** The refusal the fake deciders give, frozen as the gate's are. */
const PAY_5_SAT: Decision = Object.freeze({
  kind: 'deny',
  reason: 'PAYGRESS_PAYMENT_REQUIRED',
  message: 'pay 5 sat',
  fault: 'payer',
});

t.test('a failing handler gives 503, and the server stays up', async (t) => {
  const server = await listen({
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
  t.equal(metrics.headers.get('retry-after'), '5', 'as any fault of ours');
  t.match(await metrics.json(), {
    error: 'unavailable',
    reason: 'PAYGRESS_INTERNAL',
  });

  const auth = await fetch(`${base}/auth/forward`);
  t.equal(auth.status, 503, 'a decider bug fails closed');
  t.equal(auth.headers.get('x-paygress-reason'), 'PAYGRESS_INTERNAL');
  await auth.text();

  const health = await fetch(`${base}/healthz`);
  t.equal(health.status, 200, 'still serving');
  await health.text();
});

t.test(
  "an answer that cannot be made is refused in its protocol's shape",
  async (t) => {
    // An allow whose headers cannot be read: rendering it throws.
    const broken = {
      kind: 'allow',
      amount: 0,
      unit: 'sat',
      clientHeaders: {},
      get upstreamHeaders(): Record<string, string> {
        throw new Error('bug in the allow');
      },
    };
    const server = await listen({
      decider: { decide: () => Promise.resolve(broken as never) },
    });
    t.teardown(() => server.close(0));
    const base = `http://127.0.0.1:${server.port}`;

    const forward = await fetch(`${base}/auth/forward`);
    t.equal(forward.status, 503);
    t.equal(forward.headers.get('retry-after'), '5');
    t.match(await forward.json(), { reason: 'PAYGRESS_INTERNAL' });

    // nginx shows its client a bare 500 for any such status, and a body
    // would cost the connection: none.
    const nginx = await fetch(`${base}/auth/nginx`);
    t.equal(nginx.status, 503);
    t.equal(nginx.headers.get('x-paygress-reason'), 'PAYGRESS_INTERNAL');
    t.equal(await nginx.text(), '');
  },
);

t.test('a decider that throws at once gives 503 too, counted', async (t) => {
  const observed: string[] = [];
  const server = await listen({
    observe: (_request, decision) =>
      observed.push(decision.kind === 'deny' ? decision.reason : 'allow'),
    decider: {
      decide: () => {
        throw new Error('bug before any promise');
      },
    },
  });
  t.teardown(() => server.close(0));
  const auth = await fetch(`http://127.0.0.1:${server.port}/auth/nginx`);
  t.equal(auth.status, 503);
  t.equal(auth.headers.get('x-paygress-reason'), 'PAYGRESS_INTERNAL');
  await auth.text();
  t.ok(
    await Promise.race([
      server.idle().then(() => true),
      new Promise((resolve) => setTimeout(() => resolve(false), 2000)),
    ]),
    'nothing is left counted as running',
  );
  t.same(observed, ['PAYGRESS_INTERNAL'], 'the metrics count it');
});

t.test('an error the log cannot write takes nothing down', async (t) => {
  const lines: string[] = [];
  const server = await startHttpServer({
    host: '127.0.0.1',
    port: 0,
    logger: createLogger('info', { write: (line: string) => lines.push(line) }),
    decider: {
      decide: () => {
        return Promise.reject(unwritableError('bug in the decider'));
      },
    },
  });
  t.teardown(() => server.close(0));
  const auth = await fetch(`http://127.0.0.1:${server.port}/auth/forward`);
  t.equal(auth.status, 503, 'still answered, closed');
  t.equal(auth.headers.get('x-paygress-reason'), 'PAYGRESS_INTERNAL');
  await auth.text();
  const health = await fetch(`http://127.0.0.1:${server.port}/healthz`);
  t.equal(health.status, 200, 'still serving');
  await health.text();
  await server.idle();
  t.match(
    lines.join(''),
    /"err":\{[^}]*could not be read[^}]*\}[^\n]*"msg":"decider threw"/,
    'the line is written, the error as unreadable',
  );
});

t.test('a logger that throws takes nothing down', async (t) => {
  const server = await startHttpServer({
    host: '127.0.0.1',
    port: 0,
    logger: createLogger('info', {
      write: () => {
        throw new Error('the log is gone');
      },
    }),
    decider: { decide: () => Promise.reject(new Error('bug in the decider')) },
  });
  t.teardown(() => server.close(0));
  const auth = await fetch(`http://127.0.0.1:${server.port}/auth/forward`);
  t.equal(auth.status, 503, 'answered all the same');
  await auth.text();
  const health = await fetch(`http://127.0.0.1:${server.port}/healthz`);
  t.equal(health.status, 200, 'still serving');
  await health.text();
});

t.test('a decider that answers, then throws, is answered once', async (t) => {
  let second: ((decision: Decision) => void) | undefined;
  const server = await listen({
    decider: {
      decide: (request) => {
        if (request.path === '/later') {
          return new Promise<Decision>((resolve) => (second = resolve));
        }
        // A thenable that answers, then throws: not a promise of Node's.
        return {
          then(ok: (decision: Decision) => void) {
            ok(PAY_5_SAT);
            throw new Error('after answering');
          },
        } as unknown as Promise<Decision>;
      },
    },
  });
  t.teardown(() => server.close(0));
  const base = `http://127.0.0.1:${server.port}/auth/forward`;
  const first = await fetch(base);
  t.equal(first.status, 402);
  t.match(await first.text(), /pay 5 sat/);

  const later = fetch(base, { headers: { 'X-Forwarded-Uri': '/later' } });
  while (second === undefined) await new Promise((r) => setTimeout(r, 5));
  const idle = server.idle().then(() => 'idle');
  const waited = await Promise.race([
    idle,
    new Promise((r) => setTimeout(() => r('waiting'), 200)),
  ]);
  t.equal(waited, 'waiting', 'a decision still being made is waited for');
  second(PAY_5_SAT);
  t.equal((await later).status, 402);
  t.equal(await idle, 'idle');
});

t.test('a decider returning a plain decision is answered', async (t) => {
  const server = await listen({
    decider: { decide: () => PAY_5_SAT as unknown as Promise<Decision> },
  });
  t.teardown(() => server.close(0));
  const res = await fetch(`http://127.0.0.1:${server.port}/auth/forward`);
  t.equal(res.status, 402);
  await res.text();
});

t.test(
  'a constant decision is rendered once, never changed by a request',
  async (t) => {
    let calls = 0;
    const server = await listen({
      decider: {
        decide: async (request) => {
          calls += 1;
          if (request.path !== '/fresh') return PAY_5_SAT;
          return { ...PAY_5_SAT, message: `fresh ${calls}` };
        },
      },
    });
    t.teardown(() => server.close(0));

    // One connection, raw, so every byte of every answer is seen.
    const exchange = (requests: string[]) =>
      new Promise<string>((resolve, reject) => {
        const socket = connect(server.port, '127.0.0.1');
        let data = '';
        socket.setEncoding('utf8');
        socket.on('data', (chunk) => (data += chunk));
        socket.on('end', () => resolve(data));
        socket.on('error', reject);
        socket.write(requests.join(''));
        setTimeout(() => socket.end(), 300);
      });
    const get = (uri: string, extra = '') =>
      `GET /auth/forward HTTP/1.1\r\nHost: x\r\nX-Forwarded-Uri: ${uri}\r\n${extra}\r\n`;

    const announced = await exchange([
      get('/a', 'Content-Length: 5\r\n') + 'hello',
    ]);
    t.match(announced, /^HTTP\/1\.1 402 .*\r\nConnection: close\r\n/s);

    const kept = await exchange([get('/a'), get('/b')]);
    const answers = kept.split('HTTP/1.1 ').filter(Boolean);
    t.equal(answers.length, 2, 'both answered on one connection');
    t.notOk(/connection: close/i.test(kept), 'the close did not stick');
    t.equal(answers[0], answers[1], 'the same bytes both times');
    t.match(answers[0], /"message":"pay 5 sat"/);

    const fresh = await exchange([get('/fresh'), get('/fresh')]);
    const bodies = [...fresh.matchAll(/"message":"(fresh \d+)"/g)].map(
      (m) => m[1],
    );
    t.equal(bodies.length, 2);
    t.not(
      bodies[0],
      bodies[1],
      'a decision made per request is rendered per request',
    );
  },
);

t.test(
  'a body outside ASCII goes out as UTF-8 with its length in bytes',
  async (t) => {
    const message = 'payez 5 sat pour « /café » ✓';
    const server = await listen({
      decider: {
        decide: async (request) => ({
          kind: 'deny',
          reason: 'PAYGRESS_PAYMENT_REQUIRED',
          message: request.path === '/ascii' ? 'pay 5 sat' : message,
          fault: 'payer',
        }),
      },
    });
    t.teardown(() => server.close(0));
    for (const path of ['/ascii', '/caf%C3%A9']) {
      const res = await fetch(`http://127.0.0.1:${server.port}/auth/forward`, {
        headers: { 'X-Forwarded-Uri': path },
      });
      const bytes = Buffer.from(await res.arrayBuffer());
      t.equal(
        Number(res.headers.get('content-length')),
        bytes.length,
        `${path}: Content-Length counts bytes`,
      );
      const body = JSON.parse(bytes.toString('utf8')) as { message: string };
      t.equal(body.message, path === '/ascii' ? 'pay 5 sat' : message);
    }
  },
);

t.test(
  'a client that pipelines without reading is cut off, not held in memory',
  async (t) => {
    let decided = 0;
    const server = await listen({
      decider: {
        decide: async () => {
          decided += 1;
          return PAY_5_SAT;
        },
      },
    });
    t.teardown(() => server.close(0));
    const get = 'GET /auth/forward HTTP/1.1\r\nHost: x\r\n\r\n';

    // 2,000 requests in one write, nothing read: the answers would wait
    // in Paygress's memory for as long as the client liked.
    const flooding = connect(server.port, '127.0.0.1');
    flooding.pause();
    flooding.on('error', () => {});
    let received = '';
    flooding.on('data', (chunk: Buffer) => (received += chunk.toString()));
    const closed = new Promise<string>((resolve) => {
      flooding.once('close', () => resolve('closed by Paygress'));
      setTimeout(() => resolve('still open after 5 s'), 5000).unref();
    });
    flooding.write(get.repeat(2000));
    await new Promise((resolve) => setTimeout(resolve, 500));
    t.ok(decided <= 1 + MAX_QUEUED_ANSWERS, `${decided} decided of 2,000 sent`);
    // Reading now finds the end of the connection, not 2,000 answers.
    flooding.resume();
    t.equal(await closed, 'closed by Paygress');
    flooding.destroy();
    const answered = (received.match(/HTTP\/1\.1 402 /g) ?? []).length;
    t.ok(answered <= 1 + MAX_QUEUED_ANSWERS, `${answered} answers sent`);

    // Pipelining within the limit, read as it comes: every answer, in order.
    const answers = await new Promise<string>((resolve, reject) => {
      const socket = connect(server.port, '127.0.0.1');
      let data = '';
      socket.setEncoding('latin1');
      socket.on('data', (chunk: string) => {
        data += chunk;
        if ((data.match(/HTTP\/1\.1 402 /g) ?? []).length === 8) {
          socket.destroy();
          resolve(data);
        }
      });
      socket.on('error', reject);
      socket.write(get.repeat(8));
    });
    t.equal((answers.match(/HTTP\/1\.1 402 /g) ?? []).length, 8);
  },
);

t.test('shutdown waits to learn whether a paid answer arrived', async (t) => {
  const lost: string[] = [];
  let finish: (decision: Decision) => void = () => {};
  let asked: () => void = () => {};
  const decided = new Promise<void>((resolve) => (asked = resolve));
  const server = await listen({
    decider: {
      decide: () => {
        asked();
        return new Promise((resolve) => (finish = resolve));
      },
      undelivered: (decision) => lost.push(decision.redemptionId ?? ''),
    },
  });
  const client = connect(server.port, '127.0.0.1');
  client.on('error', () => {});
  client.write('GET /auth/forward HTTP/1.1\r\nHost: x\r\n\r\n');
  await decided;

  // The grace period ends (closing every connection) and, in the same
  // turn, the paid decision is made: the answer goes to a closed socket.
  const closed = server.close(0);
  setTimeout(() => finish(paidAllow('r-1')), 0);
  await closed;
  await server.idle();
  t.same(lost, ['r-1'], 'known to be undelivered before idle() resolves');
  client.destroy();
});

t.test('what the parser refuses gets the status that says why', async (t) => {
  const server = await listen({
    maxHeaderSize: 1024,
    decider: { decide: () => Promise.reject(new Error('never asked')) },
  });
  t.teardown(() => server.close(0));
  const statusOf = (raw: string) =>
    new Promise<string>((resolve, reject) => {
      const socket = connect(server.port, '127.0.0.1');
      let data = '';
      socket.setEncoding('latin1');
      socket.on('data', (chunk: string) => (data += chunk));
      socket.on('close', () => resolve(data.split('\r\n')[0]!));
      socket.on('error', reject);
      socket.write(raw);
    });

  t.equal(
    await statusOf(
      `GET /auth/forward HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(2048)}\r\n\r\n`,
    ),
    'HTTP/1.1 431 Request Header Fields Too Large',
  );
  t.equal(
    await statusOf('GET /auth/forward HTTP/1.1\r\nX-Bad: a\x01b\r\n\r\n'),
    'HTTP/1.1 400 Bad Request',
  );
});

t.test(
  'large pipelined requests behind a slow one are bounded in bytes',
  async (t) => {
    let decided = 0;
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    const server = await listen({
      decider: {
        // The first request waits (a slow mint), the rest queue behind it.
        decide: async () => {
          decided += 1;
          if (decided === 1) await held;
          return PAY_5_SAT;
        },
      },
    });
    t.teardown(async () => {
      release();
      await server.close(0);
    });
    const get = (pad: string) =>
      `GET /auth/forward HTTP/1.1\r\nHost: x\r\nX-Pad: ${pad}\r\n\r\n`;
    const socket = connect(server.port, '127.0.0.1');
    socket.on('error', () => {});
    const closed = new Promise<string>((resolve) => {
      socket.once('close', () => resolve('closed by Paygress'));
      setTimeout(() => resolve('still open after 5 s'), 5000).unref();
    });
    socket.on('data', () => {});
    socket.write(get('') + get('p'.repeat(30_000)).repeat(20));

    t.equal(await closed, 'closed by Paygress');
    const most = 1 + Math.floor(MAX_QUEUED_BYTES / 30_000);
    t.ok(decided <= most, `${decided} decided, at most ${most}`);
  },
);

t.test('a paid answer that could not be made stays owed', async (t) => {
  const lost: string[] = [];
  const server = await listen({
    decider: {
      decide: async () => paidAllow('r-2'),
      undelivered: (decision) => lost.push(decision.redemptionId ?? ''),
    },
    observe: () => {
      throw new Error('bug while counting');
    },
  });
  t.teardown(() => server.close(0));
  const res = await fetch(`http://127.0.0.1:${server.port}/auth/forward`);
  t.equal(res.status, 503, 'fails closed');
  await res.text();
  await server.idle();
  t.same(lost, ['r-2'], 'the payment is owed, once');
});
