/**
 * What a slow disk does to Paygress: every fsync and fdatasync of the
 * Paygress process takes `--sync-ms` longer (test/support/sync-shim.c,
 * preloaded, compiled here with the machine's `cc`), as a flush to a
 * network block volume does, in front of the timed dev mint. Per round
 * and checkout:
 *
 * - Paygress's own time per redemption (total − the mint's swap), fresh
 *   100 sat tokens one at a time;
 * - the latency of no-token forward-auth refusals at a fixed rate (h2load,
 *   HTTP/1.1, 4 connections), first alone, then while `--concurrency`
 *   redemptions run at once: time the process spends waiting for the disk
 *   with its event loop stopped shows there;
 * - how many redemptions a second went through meanwhile (the dev mint,
 *   which signs one swap at a time, sets that pace), and the longest the
 *   event loop stood still: Paygress's own `paygress_nodejs_eventloop_
 *   lag_max_seconds` over the time (it restarts at each scrape), less the
 *   10 ms of the timer it is measured with.
 *
 * Paygress runs alone on the machine's last core, everything else (the
 * mint, the load, this script) on the others (`taskset`), so the delays
 * are Paygress's own rather than other processes holding its core. With
 * `--compare DIR` (another checkout, with its node_modules) both are
 * measured, alternating which goes first.
 *
 *   node_modules/.bin/node bench/slow-disk.ts [--sync-ms 2] [--rounds 2]
 *     [--count 50] [--concurrency 8] [--seconds 5] [--compare DIR]
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { buildSyncShim } from '../test/support/sync-shim.ts';
import { mintToken } from '../test/support/wallet.ts';
import { PAYGRESS_NODE_ARGS, startChild } from './lib/child.ts';
import { PRICED_PATH, forwardHeaders } from './lib/fixtures.ts';
import { h2load } from './lib/load.ts';
import { measureRedemption } from './lib/redemption.ts';

const { values } = parseArgs({
  options: {
    'sync-ms': { type: 'string', default: '2' },
    rounds: { type: 'string', default: '2' },
    count: { type: 'string', default: '50' },
    concurrency: { type: 'string', default: '8' },
    seconds: { type: 'string', default: '5' },
    compare: { type: 'string' },
  },
});
const seconds = Number(values.seconds);
const concurrency = Number(values.concurrency);
const here = resolve(new URL('..', import.meta.url).pathname);
const trees = [here, ...(values.compare ? [resolve(values.compare)] : [])];
const PROBE_RATE = 400;

const work = mkdtempSync(join(tmpdir(), 'paygress-slow-disk-'));
const shim = buildSyncShim(work);
if (shim === undefined) {
  rmSync(work, { recursive: true, force: true });
  throw new Error('bench/slow-disk.ts needs a C compiler (cc)');
}

const cores = availableParallelism();
if (cores < 2) throw new Error('bench/slow-disk.ts needs two cores or more');
/** Moves every thread of `pid` onto the cores in `list` (taskset syntax). */
const pin = (pid: number, list: string) =>
  execFileSync('taskset', ['-a', '-p', '-c', list, String(pid)], {
    stdio: 'ignore',
  });
const others = `0-${cores - 2}`;
pin(process.pid, others);

const mint = await startChild(
  new URL('servers/timed-mint.ts', import.meta.url).pathname,
);
pin(mint.pid, others);
const mintUrl = String(mint.ports.url);
const statsPort = Number(mint.ports.stats);

/** Tokens for the redemptions under load, minted `concurrency` at a time. */
async function mintTokens(n: number): Promise<string[]> {
  const tokens: string[] = [];
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (tokens.length < n) tokens.push(await mintToken(mintUrl, 100));
    }),
  );
  return tokens;
}

/** Redeems `tokens` `concurrency` at a time until `stop()` resolves. */
async function redeemUntil(
  base: string,
  tokens: string[],
  stop: Promise<unknown>,
): Promise<{ allowed: number; other: number; ranOut: boolean }> {
  let done = false;
  void stop.then(() => (done = true));
  let allowed = 0;
  let other = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (!done && tokens.length > 0) {
        const res = await fetch(`${base}/auth/forward`, {
          headers: [
            ...forwardHeaders(PRICED_PATH),
            ['X-Cashu', tokens.pop()!],
          ].map(([k, v]) => [k, v]),
        });
        await res.arrayBuffer();
        if (res.status === 200) allowed++;
        else other++;
      }
    }),
  );
  return { allowed, other, ranOut: tokens.length === 0 };
}

/** The longest the event loop stood still since the last scrape, in ms. */
async function longestStall(admin: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
  const max = /^paygress_nodejs_eventloop_lag_max_seconds (\S+)$/m.exec(text);
  return Math.max(0, 1000 * Number(max?.[1]) - 10);
}

const lines: string[] = [];
try {
  for (let round = 1; round <= Number(values.rounds); round++) {
    const order = round % 2 ? trees : [...trees].reverse();
    for (const tree of order) {
      const tokens = await mintTokens(concurrency * seconds * 20);
      const paygress = await startChild(
        join(tree, 'bench/servers/paygress.ts'),
        ['--mint', mintUrl],
        {
          nodeArgs: PAYGRESS_NODE_ARGS,
          env: {
            LD_PRELOAD: shim,
            SLOW_SYNC_US: String(Number(values['sync-ms']) * 1000),
          },
        },
      );
      try {
        pin(paygress.pid, String(cores - 1));
        const base = `http://127.0.0.1:${paygress.ports.http}`;
        await measureRedemption(base, mintUrl, statsPort, 10); // warm-up
        const one = await measureRedemption(
          base,
          mintUrl,
          statsPort,
          Number(values.count),
          paygress.pid,
        );
        const probe = () =>
          h2load({
            url: `${base}/auth/forward`,
            headers: forwardHeaders(PRICED_PATH),
            seconds,
            clients: 4,
            h1: true,
            rate: PROBE_RATE,
          });
        const admin = Number(paygress.ports.admin);
        const alone = await probe();
        await longestStall(admin);
        const started = performance.now();
        const loaded = probe();
        const redeemed = await redeemUntil(base, tokens, loaded);
        const under = await loaded;
        const elapsed = (performance.now() - started) / 1000;
        const stall = await longestStall(admin);
        lines.push(
          `round ${round} ${tree}: one at a time: Paygress p50 ${one.paygress.p50.toFixed(2)} ms, p90 ${one.paygress.p90.toFixed(2)} ms, CPU ${one.paygressCpuMs} ms a redemption; ` +
            `refusals at ${PROBE_RATE}/s: alone p50 ${alone.p50Ms!.toFixed(2)} / p99 ${alone.p99Ms!.toFixed(2)} ms, ` +
            `with ${concurrency} redemptions at once p50 ${under.p50Ms!.toFixed(2)} / p99 ${under.p99Ms!.toFixed(2)} ms; ` +
            `${(redeemed.allowed / elapsed).toFixed(1)} redemptions/s (${redeemed.other} not allowed${redeemed.ranOut ? ', ran out of tokens' : ''}), ` +
            `event loop stood still at most ${stall.toFixed(1)} ms`,
        );
        process.stdout.write(`${lines.at(-1)}\n`);
      } finally {
        await paygress.stop();
      }
    }
  }
} finally {
  await mint.stop();
  rmSync(work, { recursive: true, force: true });
}
