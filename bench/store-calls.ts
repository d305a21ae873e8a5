/**
 * How long the wallet store holds Paygress's event loop per redemption:
 * every `node:sqlite` call timed (bench/servers/timed-store.ts) while
 * fresh 100 sat tokens are redeemed one at a time through the timed dev
 * mint, with every fsync of the Paygress process `--sync-ms` slower
 * (test/support/sync-shim.c, built with the machine's `cc`), as on a
 * network block volume. Prints, per checkout, the store's time per
 * redemption in all, in COMMIT and in compiling statements, and the
 * calls that took most. `--compare DIR` measures another checkout (with
 * its node_modules) the same way.
 *
 *   node_modules/.bin/node bench/store-calls.ts [--sync-ms 2]
 *     [--count 300] [--compare DIR]
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { buildSyncShim } from '../test/support/sync-shim.ts';
import { PAYGRESS_NODE_ARGS, startChild, type Child } from './lib/child.ts';
import { measureRedemption } from './lib/redemption.ts';
import type { StoreCalls } from './servers/timed-store.ts';

const { values } = parseArgs({
  options: {
    'sync-ms': { type: 'string', default: '2' },
    count: { type: 'string', default: '300' },
    compare: { type: 'string' },
  },
});
const count = Number(values.count);
const here = resolve(new URL('..', import.meta.url).pathname);
const trees = [here, ...(values.compare ? [resolve(values.compare)] : [])];

const work = mkdtempSync(join(tmpdir(), 'paygress-store-calls-'));
const shim = buildSyncShim(work);
if (shim === undefined) {
  rmSync(work, { recursive: true, force: true });
  throw new Error('bench/store-calls.ts needs a C compiler (cc)');
}
const callsFile = join(work, 'calls.json');

/** The store's calls since the last time this was asked. */
async function storeCalls(paygress: Child): Promise<StoreCalls> {
  rmSync(callsFile, { force: true });
  process.kill(paygress.pid, 'SIGUSR2');
  for (let i = 0; i < 100 && !existsSync(callsFile); i++) await sleep(20);
  return JSON.parse(readFileSync(callsFile, 'utf8')) as StoreCalls;
}

const mint = await startChild(
  new URL('servers/timed-mint.ts', import.meta.url).pathname,
);
const mintUrl = String(mint.ports.url);
try {
  for (const tree of trees) {
    const paygress = await startChild(
      new URL('servers/timed-store.ts', import.meta.url).pathname,
      ['--mint', mintUrl],
      {
        nodeArgs: PAYGRESS_NODE_ARGS,
        env: {
          BENCH_TREE: tree,
          BENCH_STORE_CALLS: callsFile,
          LD_PRELOAD: shim,
          SLOW_SYNC_US: String(Number(values['sync-ms']) * 1000),
        },
      },
    );
    try {
      const base = `http://127.0.0.1:${paygress.ports.http}`;
      const stats = Number(mint.ports.stats);
      await measureRedemption(base, mintUrl, stats, 10); // warm-up
      await storeCalls(paygress);
      const r = await measureRedemption(base, mintUrl, stats, count);
      if (r.allowed !== count)
        throw new Error(`${r.allowed} of ${count} allowed`);
      const calls = Object.entries(await storeCalls(paygress)).sort(
        (a, b) => b[1].ms - a[1].ms,
      );
      const per = (ms: number) => `${(ms / count).toFixed(3)} ms`;
      const sum = (match: (key: string) => boolean) =>
        calls.filter(([k]) => match(k)).reduce((n, [, v]) => n + v.ms, 0);
      process.stdout.write(
        `${tree}: the store held the event loop ${per(sum(() => true))} a redemption: ` +
          `COMMIT ${per(sum((k) => k === 'exec COMMIT'))}, compiling statements ${per(sum((k) => k === 'prepare'))}; ` +
          `Paygress p50 ${r.paygress.p50.toFixed(2)} ms\n`,
      );
      for (const [key, { calls: n, ms }] of calls.slice(0, 6)) {
        process.stdout.write(
          `  ${per(ms)} in ${(n / count).toFixed(1)} calls: ${key.slice(0, 90)}\n`,
        );
      }
    } finally {
      await paygress.stop();
    }
  }
} finally {
  await mint.stop();
  rmSync(work, { recursive: true, force: true });
}
