/**
 * What silent connections cost Paygress: opens `--count` TCP connections
 * to one listener of a fresh Paygress (bench/servers/paygress.ts, in
 * front of a dev mint), one after another, sends nothing on them, and
 * prints Paygress's resident memory and open file descriptors (from
 * /proc), how many of the connections it has closed, and whether a
 * forward-auth request still gets its answer, at once and over the next
 * 45 s. Then closes every connection and stops.
 *
 *   node_modules/.bin/node bench/silent-connections.ts
 *     [--listener admin|http|grpc] [--count 9000]
 */
import { readdirSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { parseArgs } from 'node:util';
import { PAYGRESS_NODE_ARGS, startChild } from './lib/child.ts';
import { PRICED_PATH, forwardHeaders } from './lib/fixtures.ts';

const { values } = parseArgs({
  options: {
    listener: { type: 'string', default: 'admin' },
    count: { type: 'string', default: '9000' },
  },
});
const here = (file: string) => new URL(file, import.meta.url).pathname;
const count = Number(values.count);

const mint = await startChild(here('servers/timed-mint.ts'));
const paygress = await startChild(
  here('servers/paygress.ts'),
  ['--mint', String(mint.ports.url)],
  { nodeArgs: [...PAYGRESS_NODE_ARGS], env: { BENCH_LOG_LEVEL: 'error' } },
);
const port = Number(paygress.ports[values.listener]);
if (!port) throw new Error(`no listener ${values.listener}`);

let closed = 0;
const sockets: Socket[] = [];
const state = () => {
  const rss = (paygress.rss() / 2 ** 20).toFixed(1);
  const fds = readdirSync(`/proc/${paygress.pid}/fd`).length;
  return `RSS ${rss} MB, ${fds} fds, ${closed} of ${sockets.length} closed by Paygress`;
};
const answered = async () => {
  const start = performance.now();
  try {
    const res = await fetch(
      `http://127.0.0.1:${paygress.ports.http}/auth/forward`,
      {
        headers: forwardHeaders(PRICED_PATH).map(([k, v]) => [k, v]),
        signal: AbortSignal.timeout(5000),
      },
    );
    await res.arrayBuffer();
    return `${res.status} in ${(performance.now() - start).toFixed(1)} ms`;
  } catch (err) {
    return `no answer (${(err as Error).message})`;
  }
};

try {
  console.log(`before: ${state()}`);
  const started = performance.now();
  // One after another, at most a minute.
  for (let i = 0; i < count && performance.now() - started < 60_000; i++) {
    await new Promise<void>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port }, resolve);
      socket.once('error', () => resolve());
      socket.once('close', () => (closed += 1));
      sockets.push(socket);
    });
  }
  const took = Math.round(performance.now() - started);
  console.log(`${sockets.length} opened in ${took} ms: ${state()}`);
  console.log(`forward-auth: ${await answered()}`);
  let waited = 0;
  for (const at of [5, 15, 30, 45]) {
    await new Promise((r) => setTimeout(r, (at - waited) * 1000));
    waited = at;
    console.log(`+${at} s: ${state()}; forward-auth ${await answered()}`);
  }
} finally {
  for (const socket of sockets) socket.destroy();
  await paygress.stop();
  await mint.stop();
}
