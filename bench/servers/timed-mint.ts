/**
 * The dev mint in a process of its own, timing every mint API request it
 * serves from the moment Node parsed the request to the moment the
 * response finished, through Node's built-in HTTP diagnostics channels (no
 * change to the mint). A second loopback port serves those times so the
 * bench can subtract the mint's share from a redemption's latency.
 */
import { subscribe } from 'node:diagnostics_channel';
import type { IncomingMessage } from 'node:http';
import { createServer } from 'node:http';
import { startDevMint } from '../../src/devmint/index.ts';
import { reportReady } from '../lib/child.ts';

const started = new WeakMap<IncomingMessage, number>();
let times = new Map<string, number[]>();

subscribe('http.server.request.start', (message) => {
  const { request } = message as { request: IncomingMessage };
  if (request.url?.startsWith('/v1/')) {
    started.set(request, performance.now());
  }
});
subscribe('http.server.response.finish', (message) => {
  const { request } = message as { request: IncomingMessage };
  const start = started.get(request);
  if (start === undefined) return;
  const route = request.url!.split('?')[0]!;
  const list = times.get(route) ?? [];
  list.push(performance.now() - start);
  times.set(route, list);
});

const mint = await startDevMint({ host: '127.0.0.1', port: 0 });

// Answers {route: [ms, ...]} in arrival order; POST /reset also clears.
const stats = createServer((req, res) => {
  const body = JSON.stringify(Object.fromEntries(times));
  if (req.method === 'POST' && req.url === '/reset') times = new Map();
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.end(body);
});
stats.listen(0, '127.0.0.1', () => {
  const address = stats.address();
  if (address === null || typeof address === 'string')
    throw new Error('no port');
  reportReady({ url: mint.url, stats: address.port });
});

process.once('SIGTERM', () => {
  stats.close();
  void mint.close().then(() => process.exit(0));
});
