/**
 * The floor an HTTP refusal sets before Paygress does any work: a bare
 * `node:http` server answering every request with the exact 402 that
 * `/auth/forward` sends for a request without a token (seven headers, the
 * JSON body with the NUT-18 payment request), written as Paygress writes
 * it (the body a string, so it leaves with the head in one write), and
 * the same 402 with its body as a Buffer (a second write), and the 402
 * written one promise turn after the request arrives, as Paygress's
 * asynchronous decision writes it, against the bare server's empty 200. Alternating wrk runs of each: requests per
 * second, the ratio to the bare server of the same round, and the
 * server's CPU time per request (/proc), which other load disturbs less.
 *
 *   node_modules/.bin/node bench/response-floor.ts [--seconds 4] [--rounds 3]
 */
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { fork } from 'node:child_process';
import { forwardAuthReply } from '../src/protocols/forward-auth.ts';
import { cpuMs } from './lib/cpu.ts';
import { NO_TOKEN_REFUSAL } from './lib/fixtures.ts';
import { wrk } from './lib/load.ts';

const { values } = parseArgs({
  options: {
    serve: { type: 'string' },
    seconds: { type: 'string', default: '4' },
    rounds: { type: 'string', default: '3' },
  },
});
const MODES = ['bare', 'refusal', 'refusal-buffer', 'refusal-async'] as const;

if (values.serve !== undefined) {
  // Child: one server, flat header list as Paygress writes it.
  const reply = forwardAuthReply(NO_TOKEN_REFUSAL);
  const bytes = Buffer.from(reply.body);
  const head = [
    ...Object.entries(reply.headers).flat(),
    'Content-Length',
    String(bytes.length),
  ];
  const mode = values.serve;
  const answer = (res: ServerResponse) => {
    if (mode === 'bare') {
      res.writeHead(200, { 'Content-Length': '0' });
      res.end();
      return;
    }
    res.writeHead(reply.status, head);
    if (mode === 'refusal-buffer') res.end(bytes);
    else res.end(reply.body, 'latin1');
  };
  const decide = async () => NO_TOKEN_REFUSAL;
  const server = createServer((_req, res) => {
    if (mode === 'refusal-async') void decide().then(() => answer(res));
    else answer(res);
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1', () =>
    process.send!({ port: (server.address() as AddressInfo).port }),
  );
  process.once('SIGTERM', () => server.close(() => process.exit(0)));
} else {
  const start = (mode: string) =>
    new Promise<{ port: number; pid: number; stop: () => void }>((resolve) => {
      const child = fork(new URL(import.meta.url).pathname, ['--serve', mode]);
      child.once('message', (m: { port: number }) =>
        resolve({
          port: m.port,
          pid: child.pid!,
          stop: () => child.kill('SIGTERM'),
        }),
      );
    });
  const servers = await Promise.all(MODES.map(start));
  const seconds = Number(values.seconds);
  for (let round = 0; round < Number(values.rounds); round++) {
    let bare = 0;
    const line: string[] = [];
    for (const [i, server] of servers.entries()) {
      const before = cpuMs(server.pid);
      const r = await wrk({ url: `http://127.0.0.1:${server.port}/`, seconds });
      const usPerRequest = ((cpuMs(server.pid) - before) * 1000) / r.requests;
      if (i === 0) bare = r.rps;
      line.push(
        `${MODES[i]} ${Math.round(r.rps)} req/s (${(r.rps / bare).toFixed(3)}), ${usPerRequest.toFixed(1)} µs CPU/req`,
      );
    }
    console.log(line.join('; '));
  }
  for (const server of servers) server.stop();
}
