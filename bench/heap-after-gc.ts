/**
 * Whether Paygress keeps anything per request: rounds of bounded load
 * (wrk no-token and replayed-token refusals on `/auth/forward`, h2load
 * no-token and replayed-token Checks), each followed by a full garbage
 * collection and a reading of the live heap. Resident memory can step up
 * under load as V8 and the allocator keep pages; a live heap that stays
 * level across rounds is the proof nothing accumulates.
 *
 *   node_modules/.bin/node --expose-gc bench/heap-after-gc.ts [--rounds 6]
 *
 * Paygress runs in this process (so the collection can be forced), the
 * dev mint and the load generators in their own; everything on loopback.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { startApp } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/logger.ts';
import { startChild } from './lib/child.ts';
import {
  CHECK_PATH,
  PRICED_PATH,
  checkFile,
  forwardHeaders,
  spentToken,
} from './lib/fixtures.ts';
import { h2load, wrk } from './lib/load.ts';
import { GRPC_HEADERS } from './lib/scenario.ts';

const { values } = parseArgs({
  options: { rounds: { type: 'string', default: '6' } },
});
if (typeof globalThis.gc !== 'function') {
  throw new Error('run with node --expose-gc');
}

const mint = await startChild(
  new URL('servers/timed-mint.ts', import.meta.url).pathname,
);
const mintUrl = String(mint.ports.url);
const dir = mkdtempSync(join(tmpdir(), 'paygress-heap-'));
const config = loadConfig({
  env: {
    PAYGRESS_MINTS: mintUrl,
    PAYGRESS_HTTP_HOST: '127.0.0.1',
    PAYGRESS_HTTP_PORT: '0',
    PAYGRESS_GRPC_HOST: '127.0.0.1',
    PAYGRESS_GRPC_PORT: '0',
    PAYGRESS_DATA_DIR: join(dir, 'data'),
    PAYGRESS_GRANT_KEY: randomBytes(32).toString('base64url'),
    DEFAULT_PAYMENT_AMOUNT: '100',
  },
});
const logger = createLogger(
  'info',
  pino.destination({ dest: '/dev/null', sync: false }),
);
const app = await startApp({ config, logger });
const base = `http://127.0.0.1:${app.httpPort}`;
const check = `http://127.0.0.1:${app.grpcPort}${CHECK_PATH}`;
const spent = await spentToken(base, mintUrl);
const denyFile = checkFile(dir, 'deny.bin', PRICED_PATH);
const replayFile = checkFile(dir, 'replay.bin', PRICED_PATH, [
  ['X-Cashu', spent],
]);

const mb = (bytes: number) => (bytes / 1048576).toFixed(1);
try {
  for (let round = 1; round <= Number(values.rounds); round++) {
    const loads = [
      await wrk({
        url: `${base}/auth/forward`,
        headers: forwardHeaders(PRICED_PATH),
        seconds: 4,
      }),
      await wrk({
        url: `${base}/auth/forward`,
        headers: [...forwardHeaders(PRICED_PATH), ['X-Cashu', spent]],
        seconds: 3,
      }),
      await h2load({
        url: check,
        headers: GRPC_HEADERS,
        dataFile: denyFile,
        seconds: 3,
      }),
      await h2load({
        url: check,
        headers: GRPC_HEADERS,
        dataFile: replayFile,
        seconds: 2,
      }),
    ];
    const requests = loads.reduce((sum, l) => sum + l.requests, 0);
    await new Promise((resolve) => setTimeout(resolve, 200));
    globalThis.gc();
    globalThis.gc();
    const m = process.memoryUsage();
    console.log(
      `round ${round}: ${requests} requests; after gc heap used ${mb(m.heapUsed)} MB, external ${mb(m.external)} MB, RSS ${mb(m.rss)} MB`,
    );
  }
} finally {
  await app.close();
  await mint.stop();
  rmSync(dir, { recursive: true, force: true });
}
