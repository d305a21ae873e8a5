/**
 * What V8's young generation does to the gRPC tail: a fresh Paygress
 * (bench/servers/paygress.ts) per setting of `--max-semi-space-size`
 * (`default`: V8's own), each loaded with no-token and grant Checks at a
 * fixed rate by h2load, round by round in alternation. Prints p50/p99 and
 * Paygress's CPU time per call (all its threads) per scenario and, from a
 * `gc` PerformanceObserver inside Paygress, how many scavenges ran during
 * the load and how long the longest took. Paygress ships with 8
 * (`PAYGRESS_NODE_ARGS`).
 *
 *   node_modules/.bin/node bench/young-gen.ts [--rate 10000] [--seconds 6]
 *     [--rounds 3] [--sizes default,8,16]
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startChild } from './lib/child.ts';
import { cpuMs } from './lib/cpu.ts';
import {
  CHECK_PATH,
  METERED_PATH,
  PRICED_PATH,
  buyGrant,
  checkFile,
} from './lib/fixtures.ts';
import { runFixed, runMax, type Scenario } from './lib/scenario.ts';

const { values } = parseArgs({
  options: {
    rate: { type: 'string', default: '10000' },
    seconds: { type: 'string', default: '6' },
    rounds: { type: 'string', default: '3' },
    sizes: { type: 'string', default: 'default,8,16' },
  },
});
const here = (file: string) => new URL(file, import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'paygress-young-gen-'));

// Loaded into Paygress: records the length of every scavenge (gc kind 1)
// from the first SIGUSR2 to the second, then writes them to the file the
// environment names.
const WATCH = `
import { PerformanceObserver } from 'node:perf_hooks';
import { writeFileSync } from 'node:fs';
let on = false; let pauses = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) if (on && e.detail?.kind === 1) pauses.push(e.duration);
}).observe({ entryTypes: ['gc'] });
process.on('SIGUSR2', () => {
  if (!on) { on = true; pauses = []; return; }
  on = false;
  writeFileSync(process.env.YOUNG_GEN_OUT, JSON.stringify(pauses));
});
`;
const preload = `data:text/javascript,${encodeURIComponent(WATCH)}`;

const mint = await startChild(here('servers/timed-mint.ts'));
const mintUrl = String(mint.ports.url);
try {
  for (let round = 1; round <= Number(values.rounds); round++) {
    for (const size of values.sizes.split(',')) {
      const out = join(dir, `gc-${round}-${size}.json`);
      const p = await startChild(
        here('servers/paygress.ts'),
        ['--mint', mintUrl],
        {
          nodeArgs: [
            `--import=${preload}`,
            ...(size === 'default' ? [] : [`--max-semi-space-size=${size}`]),
          ],
          env: { YOUNG_GEN_OUT: out },
        },
      );
      try {
        const grant = await buyGrant(
          `http://127.0.0.1:${p.ports.http}`,
          mintUrl,
        );
        const url = `http://127.0.0.1:${p.ports.grpc}${CHECK_PATH}`;
        const scenarios: Scenario[] = [
          {
            name: 'deny',
            tool: 'h2load',
            url,
            expect: '',
            dataFile: checkFile(dir, 'deny.bin', PRICED_PATH),
          },
          {
            name: 'allow',
            tool: 'h2load',
            url,
            expect: '',
            dataFile: checkFile(dir, 'allow.bin', METERED_PATH, [
              ['authorization', `Bearer ${grant}`],
            ]),
          },
        ];
        await runMax(scenarios[0]!, 2); // warm up
        process.kill(p.pid, 'SIGUSR2');
        const results: string[] = [];
        for (const s of scenarios) {
          const cpuBefore = cpuMs(p.pid);
          const r = await runFixed(
            s,
            Number(values.rate),
            Number(values.seconds),
          );
          const perCall = ((cpuMs(p.pid) - cpuBefore) * 1000) / r.requests;
          results.push(
            `${s.name} p50 ${r.p50Ms?.toFixed(2)} p99 ${r.p99Ms?.toFixed(2)} ms, ${perCall.toFixed(0)} µs CPU a call`,
          );
        }
        process.kill(p.pid, 'SIGUSR2');
        await new Promise((resolve) => setTimeout(resolve, 200));
        const pauses = JSON.parse(readFileSync(out, 'utf8')) as number[];
        const longest = Math.max(0, ...pauses);
        console.log(
          `round ${round} semi-space ${size}: ${results.join(' | ')} | ${pauses.length} scavenges, longest ${longest.toFixed(1)} ms`,
        );
      } finally {
        await p.stop();
      }
    }
  }
} finally {
  await mint.stop();
  rmSync(dir, { recursive: true, force: true });
}
