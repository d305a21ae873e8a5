/**
 * Clients that pipeline requests and never read the answers: each of
 * `--connections` writes `--requests` no-token forward-auth requests at
 * once and stops reading. Every five seconds for `--seconds`: Paygress's
 * resident memory, how many connections it still holds, and how long a
 * request from a well-behaved client takes meanwhile. With `--compare
 * DIR` (another checkout with its node_modules) that tree is measured
 * first, under the same load.
 *
 *   node_modules/.bin/node bench/pipeline-flood.ts [--connections 100]
 *     [--requests 20000] [--seconds 30] [--compare DIR]
 *
 * Paygress (bench/servers/paygress.ts) and the dev mint run in their own
 * processes; everything on loopback.
 */
import { execFileSync } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { PAYGRESS_NODE_ARGS, startChild } from './lib/child.ts';
import { PRICED_PATH, forwardHeaders } from './lib/fixtures.ts';

const { values } = parseArgs({
  options: {
    connections: { type: 'string', default: '100' },
    requests: { type: 'string', default: '20000' },
    seconds: { type: 'string', default: '30' },
    compare: { type: 'string' },
  },
});
const connections = Math.min(Number(values.connections), 1000);
const seconds = Math.min(Number(values.seconds), 300);
const here = resolve(new URL('..', import.meta.url).pathname);
const trees = [...(values.compare ? [resolve(values.compare)] : []), here];

const head = forwardHeaders(PRICED_PATH)
  .map(([name, value]) => `${name}: ${value}\r\n`)
  .join('');
const burst = Buffer.from(
  `GET /auth/forward HTTP/1.1\r\nHost: 127.0.0.1\r\n${head}\r\n`.repeat(
    Number(values.requests),
  ),
);

const mint = await startChild(
  new URL('servers/timed-mint.ts', import.meta.url).pathname,
);
try {
  for (const tree of trees) await measure(tree);
} finally {
  await mint.stop();
}

async function measure(tree: string): Promise<void> {
  const paygress = await startChild(
    join(tree, 'bench/servers/paygress.ts'),
    ['--mint', String(mint.ports.url)],
    { nodeArgs: PAYGRESS_NODE_ARGS },
  );
  const port = Number(paygress.ports.http);
  const sockets: Socket[] = [];
  try {
    process.stdout.write(`${tree}: start rss ${mb(paygress.rss())} MB\n`);
    for (let i = 0; i < connections; i++) {
      const socket = connect(port, '127.0.0.1');
      socket.pause();
      socket.on('error', () => {});
      socket.on('connect', () => socket.write(burst));
      sockets.push(socket);
    }
    for (let t = 5; t <= seconds; t += 5) {
      await new Promise((done) => setTimeout(done, 5000));
      const started = performance.now();
      const status = await fetch(`http://127.0.0.1:${port}/auth/forward`, {
        headers: Object.fromEntries(forwardHeaders(PRICED_PATH)),
        signal: AbortSignal.timeout(10_000),
      }).then(
        async (res) => (await res.arrayBuffer(), String(res.status)),
        () => 'no answer in 10 s',
      );
      const ms = (performance.now() - started).toFixed(0);
      process.stdout.write(
        `  t=${t}s rss ${mb(paygress.rss())} MB, connections held ${held(paygress.pid)}, a fresh request: ${status} in ${ms} ms\n`,
      );
    }
  } finally {
    for (const socket of sockets) socket.destroy();
    await paygress.stop();
  }
}

function mb(bytes: number): string {
  return (bytes / 2 ** 20).toFixed(0);
}

/** Established TCP connections the process holds, from /proc via ss. */
function held(pid: number): number {
  const out = execFileSync('ss', ['-tnpH', 'state', 'established'], {
    encoding: 'utf8',
  });
  return out.split('\n').filter((line) => line.includes(`pid=${pid},`)).length;
}
