/**
 * The bare HTTP baseline: a `node:http` server that answers every request
 * 200 with an empty body and a Content-Length, and does nothing else. It
 * is the ceiling Paygress's HTTP listener is compared against, run on the
 * same Node binary. Reports its port over IPC; stops on SIGTERM.
 */
import { createServer } from 'node:http';
import { reportReady } from '../lib/child.ts';

const server = createServer((_req, res) => {
  res.writeHead(200, { 'Content-Length': '0' });
  res.end();
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  if (address === null || typeof address === 'string')
    throw new Error('no port');
  reportReady({ http: address.port });
});
process.once('SIGTERM', () => server.close(() => process.exit(0)));
