/**
 * CPU time Paygress spends per ext_authz Check: a no-token refusal and an
 * allow with a grant, each loaded by h2load with a fixed number of calls
 * against a fresh Paygress (bench/servers/paygress.ts) and a dev mint. The
 * result is the Paygress process's CPU time (user + system, /proc) per
 * call, which other load on the machine disturbs far less than throughput.
 * With `--compare DIR` (another checkout of Paygress, with its
 * node_modules), both trees are measured in alternation, round by round.
 *
 *   node_modules/.bin/node bench/grpc-check-cpu.ts [--calls 100000]
 *     [--rounds 3] [--compare DIR]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { PAYGRESS_NODE_ARGS, startChild } from './lib/child.ts';
import { cpuMs, h2loadCalls } from './lib/cpu.ts';
import {
  CHECK_PATH,
  METERED_PATH,
  PRICED_PATH,
  buyGrant,
  checkRequest,
  frame,
} from './lib/fixtures.ts';

const { values } = parseArgs({
  options: {
    calls: { type: 'string', default: '100000' },
    rounds: { type: 'string', default: '3' },
    compare: { type: 'string' },
  },
});
const calls = Number(values.calls);
const here = resolve(new URL('..', import.meta.url).pathname);
const trees = [here, ...(values.compare ? [resolve(values.compare)] : [])];

const dir = mkdtempSync(join(tmpdir(), 'paygress-check-cpu-'));
const mint = await startChild(
  new URL('servers/timed-mint.ts', import.meta.url).pathname,
);
const results = new Map<string, number[]>();
try {
  for (let round = 0; round < Number(values.rounds); round++) {
    for (const tree of trees) {
      for (const [scenario, perCall] of await measureTree(tree, round)) {
        const key = `${tree}: ${scenario}`;
        results.set(key, [...(results.get(key) ?? []), perCall]);
      }
    }
  }
} finally {
  await mint.stop();
  rmSync(dir, { recursive: true, force: true });
}
for (const [key, perCall] of results) {
  const us = perCall.map((v) => v.toFixed(1)).join(', ');
  process.stdout.write(`${key}: ${us} µs CPU per call\n`);
}

async function measureTree(
  tree: string,
  round: number,
): Promise<[string, number][]> {
  const paygress = await startChild(
    join(tree, 'bench/servers/paygress.ts'),
    ['--mint', String(mint.ports.url)],
    { nodeArgs: PAYGRESS_NODE_ARGS },
  );
  try {
    const base = `http://127.0.0.1:${paygress.ports.http}`;
    const grant = await buyGrant(base, String(mint.ports.url));
    const url = `http://127.0.0.1:${paygress.ports.grpc}${CHECK_PATH}`;
    const bodies: [string, Buffer][] = [
      ['deny (no token)', checkRequest(PRICED_PATH)],
      [
        'allow (grant)',
        checkRequest(METERED_PATH, [['authorization', `Bearer ${grant}`]]),
      ],
    ];
    const out: [string, number][] = [];
    for (const [scenario, message] of bodies) {
      const body = join(dir, `${round}-${out.length}.bin`);
      writeFileSync(body, frame(message), { mode: 0o600 });
      await h2loadCalls(url, body, 5000); // warm-up
      const before = cpuMs(paygress.pid);
      await h2loadCalls(url, body, calls);
      out.push([scenario, ((cpuMs(paygress.pid) - before) * 1000) / calls]);
    }
    return out;
  } finally {
    await paygress.stop();
  }
}
