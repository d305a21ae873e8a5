/**
 * The floor an HTTP refusal sets before Paygress does any work: a bare
 * `node:http` server answering every request with the exact 402 that
 * `/auth/forward` sends for a request without a token (seven headers, the
 * JSON body with the NUT-18 payment request), against the bare server's
 * empty 200. Alternating wrk runs of each, then the ratio per pair.
 *
 *   node_modules/.bin/node bench/response-floor.ts [--seconds 4] [--pairs 3]
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { fork } from 'node:child_process';
import { forwardAuthReply } from '../src/protocols/forward-auth.ts';
import { NO_TOKEN_REFUSAL } from './lib/fixtures.ts';
import { wrk } from './lib/load.ts';

const { values } = parseArgs({
  options: {
    serve: { type: 'string' },
    seconds: { type: 'string', default: '4' },
    pairs: { type: 'string', default: '3' },
  },
});

if (values.serve !== undefined) {
  // Child: one server, flat header list as Paygress writes it.
  const reply = forwardAuthReply(NO_TOKEN_REFUSAL);
  const body = Buffer.from(reply.body);
  const head = [
    ...Object.entries(reply.headers).flat(),
    'Content-Length',
    String(body.length),
  ];
  const refusal = values.serve === 'refusal';
  const server = createServer((_req, res) => {
    if (refusal) {
      res.writeHead(reply.status, head);
      res.end(body);
    } else {
      res.writeHead(200, { 'Content-Length': '0' });
      res.end();
    }
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1', () =>
    process.send!({ port: (server.address() as AddressInfo).port }),
  );
  process.once('SIGTERM', () => server.close(() => process.exit(0)));
} else {
  const start = (mode: string) =>
    new Promise<{ port: number; stop: () => void }>((resolve) => {
      const child = fork(new URL(import.meta.url).pathname, ['--serve', mode]);
      child.once('message', (m: { port: number }) =>
        resolve({ port: m.port, stop: () => child.kill('SIGTERM') }),
      );
    });
  const bare = await start('bare');
  const refusal = await start('refusal');
  const seconds = Number(values.seconds);
  for (let i = 0; i < Number(values.pairs); i++) {
    const b = await wrk({ url: `http://127.0.0.1:${bare.port}/`, seconds });
    const r = await wrk({ url: `http://127.0.0.1:${refusal.port}/`, seconds });
    console.log(
      `bare ${Math.round(b.rps)} req/s, refusal ${Math.round(r.rps)} req/s, ratio ${(r.rps / b.rps).toFixed(3)}`,
    );
  }
  bare.stop();
  refusal.stop();
}
