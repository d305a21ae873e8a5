/**
 * Where the CPU of a no-token ext_authz refusal goes: CPU time per call of
 * the bare grpc-js baseline, of a bare server sending Paygress's own
 * refusal bytes, of Paygress's ext_authz adapter with a constant decider,
 * and of a whole Paygress (bench/servers/paygress.ts), each under the same
 * fixed number of h2load calls, in alternation, round by round. The
 * server's core is the bottleneck of the bench's throughput runs, so the
 * bare server's CPU per call over a server's is the throughput ratio it
 * could reach at best.
 *
 *   node_modules/.bin/node bench/grpc-floor.ts [--calls 100000] [--rounds 3]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { PAYGRESS_NODE_ARGS, startChild, type Child } from './lib/child.ts';
import { cpuMs, h2loadCalls } from './lib/cpu.ts';
import {
  CHECK_PATH,
  PRICED_PATH,
  checkRequest,
  frame,
} from './lib/fixtures.ts';

const { values } = parseArgs({
  options: {
    calls: { type: 'string', default: '100000' },
    rounds: { type: 'string', default: '3' },
  },
});
const calls = Number(values.calls);
const MODES = ['bare', 'answer', 'adapter', 'paygress'] as const;

const dir = mkdtempSync(join(tmpdir(), 'paygress-grpc-floor-'));
const body = join(dir, 'deny.bin');
writeFileSync(body, frame(checkRequest(PRICED_PATH)), { mode: 0o600 });
const mint = await startChild(
  new URL('servers/timed-mint.ts', import.meta.url).pathname,
);
const results = new Map<string, number[]>(MODES.map((m) => [m, []]));
try {
  for (let round = 0; round < Number(values.rounds); round++) {
    for (const mode of MODES) {
      const server = await start(mode);
      try {
        const url = `http://127.0.0.1:${server.ports.grpc}${CHECK_PATH}`;
        await h2loadCalls(url, body, 5000); // warm-up
        const before = cpuMs(server.pid);
        await h2loadCalls(url, body, calls);
        results.get(mode)!.push(((cpuMs(server.pid) - before) * 1000) / calls);
      } finally {
        await server.stop();
      }
    }
  }
} finally {
  await mint.stop();
  rmSync(dir, { recursive: true, force: true });
}

const bare = results.get('bare')!;
for (const [mode, perCall] of results) {
  const us = perCall.map((v) => v.toFixed(1)).join(', ');
  const ceiling = perCall.map((v, i) => (bare[i]! / v).toFixed(2)).join(', ');
  process.stdout.write(
    `${mode}: ${us} µs CPU per call; bare / this: ${ceiling}\n`,
  );
}

function start(mode: (typeof MODES)[number]): Promise<Child> {
  return mode === 'paygress'
    ? startChild(
        new URL('servers/paygress.ts', import.meta.url).pathname,
        ['--mint', String(mint.ports.url)],
        { nodeArgs: PAYGRESS_NODE_ARGS },
      )
    : startChild(new URL('servers/grpc-floor.ts', import.meta.url).pathname, [
        '--mode',
        mode,
      ]);
}
