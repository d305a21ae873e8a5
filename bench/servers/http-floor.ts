/**
 * An HTTP server that does part of what Paygress does for a forward-auth
 * request without a token, for bench/http-floor.ts to take apart where a
 * refusal's cost goes. `--mode`:
 *
 * - `refusal`: a bare `node:http` server writing Paygress's own no-token
 *   402 one promise turn after the request, as an asynchronous decision
 *   is written, the request not read;
 * - `listener`: Paygress's HTTP listener itself (connection guard,
 *   reading the request, decision log, rendering, writing), from the
 *   checkout at `--root` (default this one), with a decider that returns
 *   the refusal the gate returns for a request without a token: no
 *   pricing, no credential search, no metrics.
 *
 * Reports its port over IPC as `http`; stops on SIGTERM.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { forwardAuthReply } from '../../src/protocols/forward-auth.ts';
import { reportReady } from '../lib/child.ts';
import { NO_TOKEN_REFUSAL } from '../lib/fixtures.ts';

const { values } = parseArgs({
  options: { mode: { type: 'string' }, root: { type: 'string' } },
});

if (values.mode === 'refusal') {
  const reply = forwardAuthReply(NO_TOKEN_REFUSAL);
  const head = [
    ...Object.entries(reply.headers).flat(),
    'Content-Length',
    String(Buffer.byteLength(reply.body)),
  ];
  const decide = async () => NO_TOKEN_REFUSAL;
  const server = createServer((_req, res) => {
    void decide().then(() => {
      res.writeHead(reply.status, head);
      res.end(reply.body, 'latin1');
    });
  });
  server.keepAliveTimeout = 65_000;
  server.listen(0, '127.0.0.1', () =>
    reportReady({ http: (server.address() as AddressInfo).port }),
  );
} else if (values.mode === 'listener') {
  const root = resolve(
    values.root ?? new URL('../..', import.meta.url).pathname,
  );
  const { startHttpServer } = (await import(
    `${root}/src/protocols/http-server.ts`
  )) as typeof import('../../src/protocols/http-server.ts');
  // Paygress's default level; refusals without a token write no line.
  const logger = pino({ level: 'info' }, pino.destination('/dev/null'));
  const listener = await startHttpServer({
    host: '127.0.0.1',
    port: 0,
    decider: { decide: async () => NO_TOKEN_REFUSAL },
    logger,
  });
  reportReady({ http: listener.port });
} else {
  throw new Error('--mode refusal|listener');
}
process.once('SIGTERM', () => process.exit(0));
