/**
 * Where the CPU of a forward-auth refusal without a token goes: CPU time
 * per request of the bare `node:http` baseline, of a bare server writing
 * Paygress's own 402 a promise turn later, of Paygress's HTTP listener
 * with a constant decider, and of a whole Paygress
 * (bench/servers/paygress.ts), each loaded by wrk with the headers
 * Traefik sends, in alternation, round by round. User and system time
 * apart: user time is the server's own code, system time mostly the
 * kernel sending and waking wrk, which moves with the machine more than
 * with the server. wrk's rate is given beside each, for the throughput
 * ratios the bench's runs report. With `--compare DIR` (another
 * checkout, with its node_modules) that tree's listener and whole
 * Paygress run in each round too.
 *
 *   node_modules/.bin/node bench/http-floor.ts [--seconds 4] [--rounds 4]
 *     [--compare DIR]
 */
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { PAYGRESS_NODE_ARGS, startChild, type Child } from './lib/child.ts';
import { cpuSplitMs } from './lib/cpu.ts';
import { PRICED_PATH, forwardHeaders } from './lib/fixtures.ts';
import { wrk } from './lib/load.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '4' },
    rounds: { type: 'string', default: '4' },
    compare: { type: 'string' },
  },
});
const seconds = Number(values.seconds);
const here = resolve(new URL('..', import.meta.url).pathname);
const trees = [here, ...(values.compare ? [resolve(values.compare)] : [])];
const headers = forwardHeaders(PRICED_PATH);
const bench = (file: string) => new URL(file, import.meta.url).pathname;

interface Server {
  readonly name: string;
  start(): Promise<Child>;
}

const mint = await startChild(bench('servers/timed-mint.ts'));
const servers: Server[] = [
  {
    name: 'bare node:http',
    start: () => startChild(bench('servers/bare-http.ts')),
  },
  {
    name: 'bare, 402 a promise turn later',
    start: () =>
      startChild(bench('servers/http-floor.ts'), ['--mode', 'refusal'], {
        nodeArgs: PAYGRESS_NODE_ARGS,
      }),
  },
  ...trees.flatMap((tree): Server[] => [
    {
      name: `listener, constant decider (${tree})`,
      start: () =>
        startChild(
          bench('servers/http-floor.ts'),
          ['--mode', 'listener', '--root', tree],
          { nodeArgs: PAYGRESS_NODE_ARGS },
        ),
    },
    {
      name: `whole Paygress (${tree})`,
      start: () =>
        startChild(
          join(tree, 'bench/servers/paygress.ts'),
          ['--mint', String(mint.ports.url)],
          { nodeArgs: PAYGRESS_NODE_ARGS },
        ),
    },
  ]),
];

const results = new Map<string, string[]>(servers.map((s) => [s.name, []]));
try {
  for (let round = 0; round < Number(values.rounds); round++) {
    for (const server of servers) {
      const child = await server.start();
      try {
        const url = `http://127.0.0.1:${child.ports.http}/auth/forward`;
        await wrk({ url, seconds: 1, headers }); // warm-up
        const before = cpuSplitMs(child.pid);
        const r = await wrk({ url, seconds, headers });
        if (r.errors > 0) throw new Error(`${server.name}: socket errors`);
        const after = cpuSplitMs(child.pid);
        const us = (ms: number) => ((ms * 1000) / r.requests).toFixed(1);
        results
          .get(server.name)!
          .push(
            `${us(after.user - before.user)} + ${us(after.system - before.system)} (${Math.round(r.rps)}/s)`,
          );
      } finally {
        await child.stop();
      }
    }
  }
} finally {
  await mint.stop();
}

process.stdout.write(
  'µs CPU per request, user + system (requests a second), round by round\n',
);
for (const [name, rounds] of results) {
  process.stdout.write(`${name}: ${rounds.join(', ')}\n`);
}
