/**
 * CPU time Paygress spends per HTTP auth request: forward-auth and nginx
 * refusals without a token, and a forward-auth allow with a grant, each
 * loaded by wrk (1 thread, 64 connections) against a fresh Paygress
 * (bench/servers/paygress.ts) and a dev mint, beside the bare `node:http`
 * server of bench/servers/bare-http.ts in the same round. The result is
 * the server process's CPU time (user + system, /proc) per request, and
 * the bare server's over it: the throughput ratio Paygress could reach if
 * its core were all that limits it. With `--compare DIR` (another
 * checkout of Paygress, with its node_modules), both trees are measured
 * in alternation, round by round.
 *
 *   node_modules/.bin/node bench/http-cpu.ts [--seconds 4] [--rounds 3]
 *     [--compare DIR]
 */
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { PAYGRESS_NODE_ARGS, startChild, type Child } from './lib/child.ts';
import { cpuMs } from './lib/cpu.ts';
import {
  METERED_PATH,
  PRICED_PATH,
  buyGrant,
  forwardHeaders,
  nginxHeaders,
} from './lib/fixtures.ts';
import { wrk, type HeaderList } from './lib/load.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '4' },
    rounds: { type: 'string', default: '3' },
    compare: { type: 'string' },
  },
});
const seconds = Number(values.seconds);
const here = resolve(new URL('..', import.meta.url).pathname);
const trees = [here, ...(values.compare ? [resolve(values.compare)] : [])];

/** Server CPU per request, in µs, over one wrk run of `seconds`. */
async function perRequest(
  server: Child,
  url: string,
  headers: HeaderList = [],
): Promise<{ us: number; rps: number }> {
  await wrk({ url, seconds: 1, headers }); // warm-up
  const before = cpuMs(server.pid);
  const r = await wrk({ url, seconds, headers });
  if (r.errors > 0) throw new Error(`${url}: ${r.errors} socket errors`);
  return { us: ((cpuMs(server.pid) - before) * 1000) / r.requests, rps: r.rps };
}

const mint = await startChild(
  new URL('servers/timed-mint.ts', import.meta.url).pathname,
);
const bare = await startChild(
  new URL('servers/bare-http.ts', import.meta.url).pathname,
);
const results = new Map<string, string[]>();
const record = (key: string, value: string) =>
  results.set(key, [...(results.get(key) ?? []), value]);
try {
  for (let round = 0; round < Number(values.rounds); round++) {
    const floor = await perRequest(
      bare,
      `http://127.0.0.1:${bare.ports.http}/`,
    );
    record('bare node:http', `${floor.us.toFixed(1)}`);
    for (const tree of trees) {
      const paygress = await startChild(
        join(tree, 'bench/servers/paygress.ts'),
        ['--mint', String(mint.ports.url)],
        { nodeArgs: PAYGRESS_NODE_ARGS },
      );
      try {
        const base = `http://127.0.0.1:${paygress.ports.http}`;
        const grant = await buyGrant(base, String(mint.ports.url));
        const scenarios: [string, string, HeaderList][] = [
          ['deny /auth/forward', '/auth/forward', forwardHeaders(PRICED_PATH)],
          ['deny /auth/nginx', '/auth/nginx', nginxHeaders(PRICED_PATH)],
          [
            'allow /auth/forward (grant)',
            '/auth/forward',
            [
              ...forwardHeaders(METERED_PATH),
              ['Authorization', `Bearer ${grant}`],
            ],
          ],
        ];
        for (const [name, path, headers] of scenarios) {
          const r = await perRequest(paygress, `${base}${path}`, headers);
          record(
            `${tree}: ${name}`,
            `${r.us.toFixed(1)} (${(floor.us / r.us).toFixed(2)})`,
          );
        }
      } finally {
        await paygress.stop();
      }
    }
  }
} finally {
  await bare.stop();
  await mint.stop();
}
process.stdout.write(
  'µs CPU per request, round by round (bare server CPU / this)\n',
);
for (const [key, values] of results) {
  process.stdout.write(`${key}: ${values.join(', ')}\n`);
}
