/**
 * What junk grant cookies cost a request that carries a good grant:
 * starts a fresh Paygress (bench/servers/paygress.ts, in front of a dev
 * mint), buys a grant on its rate route, then sends `--requests`
 * forward-auth requests (https, one at a time) with the grant's cookie
 * after as many junk cookies as fill a 31 KiB header, of each kind:
 *
 * - `none`: the grant's cookie alone;
 * - `host`: `__Host-paygress_grant` cookies that are not credentials;
 * - `host-forged`: `__Host-` cookies shaped as this Paygress's
 *   credentials (its key id) with a wrong MAC, so each costs a decoding
 *   and an HMAC;
 * - `plain-forged`: the same under the plain name, as a credential from
 *   before `__Host-` cookies (no `h`), which https requests still read.
 *
 * Prints, per kind, the mean answer time and Paygress's CPU per request
 * (user + system, from /proc). Every answer must be a 200 on the grant.
 *
 *   node_modules/.bin/node bench/junk-cookies.ts [--requests 500] [--rounds 3]
 */
import { parseArgs } from 'node:util';
import { cpuMs } from './lib/cpu.ts';
import { PAYGRESS_NODE_ARGS, startChild } from './lib/child.ts';
import { METERED_PATH, buyGrant, forward } from './lib/fixtures.ts';

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '500' },
    rounds: { type: 'string', default: '3' },
  },
});
const requests = Number(values.requests);
const rounds = Number(values.rounds);
const here = (file: string) => new URL(file, import.meta.url).pathname;
const HEADER_BYTES = 31 * 1024;

const mint = await startChild(here('servers/timed-mint.ts'));
const paygress = await startChild(
  here('servers/paygress.ts'),
  ['--mint', String(mint.ports.url)],
  { nodeArgs: [...PAYGRESS_NODE_ARGS], env: { BENCH_LOG_LEVEL: 'error' } },
);
const base = `http://127.0.0.1:${paygress.ports.http}`;

try {
  const grant = await buyGrant(base, String(mint.ports.url));
  if (grant === undefined) throw new Error('no grant');
  const payload = JSON.parse(
    Buffer.from(grant.split('.')[1]!, 'base64url').toString('utf8'),
  ) as Record<string, unknown>;
  const forged = (i: number, marked: boolean) => {
    const fields = { ...payload, i: `junk${i}` } as Record<string, unknown>;
    if (!marked) delete fields.h;
    const body = Buffer.from(JSON.stringify(fields)).toString('base64url');
    return `pgr1.${body}.${'A'.repeat(43)}`;
  };
  const fill = (cookie: (i: number) => string): string => {
    const parts: string[] = [];
    let bytes = 0;
    for (let i = 0; ; i += 1) {
      const next = cookie(i);
      if (bytes + next.length + 2 > HEADER_BYTES - grant.length - 40) break;
      parts.push(next);
      bytes += next.length + 2;
    }
    return parts.join('; ');
  };
  const kinds: Record<string, string> = {
    none: '',
    host: fill((i) => `__Host-paygress_grant=pgr1.junk${i}.x`),
    'host-forged': fill((i) => `__Host-paygress_grant=${forged(i, true)}`),
    'plain-forged': fill((i) => `paygress_grant=${forged(i, false)}`),
  };
  for (const [kind, junk] of Object.entries(kinds)) {
    const count = junk === '' ? 0 : junk.split('; ').length;
    console.log(`${kind}: ${count} junk cookies, ${junk.length} bytes`);
  }

  for (let round = 1; round <= rounds; round += 1) {
    for (const [kind, junk] of Object.entries(kinds)) {
      const cookie = `${junk}${junk ? '; ' : ''}__Host-paygress_grant=${grant}`;
      const cpuBefore = cpuMs(paygress.pid);
      const start = performance.now();
      for (let i = 0; i < requests; i += 1) {
        const { status } = await forward(base, METERED_PATH, [
          ['Cookie', cookie],
        ]);
        if (status !== 200) throw new Error(`${kind}: answered ${status}`);
      }
      const ms = (performance.now() - start) / requests;
      const cpu = ((cpuMs(paygress.pid) - cpuBefore) / requests) * 1000;
      console.log(
        `round ${round} ${kind.padEnd(12)} ${ms.toFixed(3)} ms a request, ${cpu.toFixed(0)} µs of Paygress CPU`,
      );
    }
  }
} finally {
  await paygress.stop();
  await mint.stop();
}
