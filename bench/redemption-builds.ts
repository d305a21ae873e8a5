/**
 * Whole redemptions on each build of libsecp256k1: two Paygress processes
 * (bench/servers/paygress.ts, one with `secp256k1: wasm`, one with
 * `native`) in front of one timed dev mint, redeeming fresh 100 sat
 * tokens one at a time, round by round in alternation. Prints, per build
 * and round, Paygress's time per redemption (total − the mint's swap) at
 * the median and p90, and its CPU time per redemption (all threads).
 *
 *   node_modules/.bin/node bench/redemption-builds.ts [--rounds 3]
 *     [--count 50]
 */
import { parseArgs } from 'node:util';
import { PAYGRESS_NODE_ARGS, startChild, type Child } from './lib/child.ts';
import { measureRedemption } from './lib/redemption.ts';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    count: { type: 'string', default: '50' },
  },
});
const here = (file: string) => new URL(file, import.meta.url).pathname;

const mint = await startChild(here('servers/timed-mint.ts'));
const mintUrl = String(mint.ports.url);
const builds = ['wasm', 'native'] as const;
const servers: Child[] = [];
try {
  for (const build of builds) {
    servers.push(
      await startChild(here('servers/paygress.ts'), ['--mint', mintUrl], {
        nodeArgs: [...PAYGRESS_NODE_ARGS],
        env: { BENCH_SECP256K1: build },
      }),
    );
  }
  for (let round = 1; round <= Number(values.rounds); round++) {
    // The first build of each round alternates.
    const order = round % 2 ? [0, 1] : [1, 0];
    for (const i of order) {
      const server = servers[i]!;
      const r = await measureRedemption(
        `http://127.0.0.1:${server.ports.http}`,
        mintUrl,
        Number(mint.ports.stats),
        Number(values.count),
        server.pid,
      );
      if (r.allowed !== r.redemptions) {
        throw new Error(`${r.allowed} of ${r.redemptions} allowed`);
      }
      console.log(
        `round ${round} ${builds[i]}: Paygress p50 ${r.paygress.p50.toFixed(2)} ms, p90 ${r.paygress.p90.toFixed(2)} ms, CPU ${r.paygressCpuMs} ms a redemption (mint swap p50 ${r.mintSwap.p50.toFixed(1)} ms)`,
      );
    }
  }
} finally {
  for (const server of servers) await server.stop();
  await mint.stop();
}
