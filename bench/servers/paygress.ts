/**
 * Paygress as the bench runs it: the real composition root with a fresh
 * data directory, one dev mint (`--mint URL`), a 100 sat per-request
 * default price and one rate route, `/metered`, that sells grants (1 sat
 * a minute). Logs go to its stdout at `BENCH_LOG_LEVEL` (default `info`,
 * Paygress's own default, so decision lines are in the cost), with
 * Paygress's default decision policy and refusal limit unless
 * `BENCH_LOG_DECISIONS` names another (`all`: a line for every decision,
 * no limit), and the build of
 * libsecp256k1 `BENCH_SECP256K1` names (default `auto`).
 * An admin listener on loopback serves `/metrics`. Reports its ports
 * (`http`, `grpc`, `admin`) over IPC; on SIGTERM closes cleanly and exits, which
 * is when `--cpu-prof` writes its profile.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { LevelWithSilent } from 'pino';
import { startApp } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { reportReady } from '../lib/child.ts';

// Same path as METERED_PATH in bench/lib/fixtures.ts.
const METERED_PATH = '/metered';

const RULES = `pricing:
  default: { amount: 100, unit: sat }
  rules:
    - name: metered
      match: { path: ${METERED_PATH} }
      rate: { amount: 1, unit: sat, perSeconds: 60, minSeconds: 60, maxSeconds: 86400 }
`;

const { values } = parseArgs({ options: { mint: { type: 'string' } } });
if (!values.mint) throw new Error('--mint URL is required');

const dataDir = mkdtempSync(join(tmpdir(), 'paygress-bench-'));
const file = join(dataDir, 'paygress.yaml');
writeFileSync(file, RULES);
const config = loadConfig({
  file,
  env: {
    PAYGRESS_MINTS: values.mint,
    PAYGRESS_HTTP_HOST: '127.0.0.1',
    PAYGRESS_HTTP_PORT: '0',
    PAYGRESS_GRPC_HOST: '127.0.0.1',
    PAYGRESS_GRPC_PORT: '0',
    PAYGRESS_ADMIN_HOST: '127.0.0.1',
    PAYGRESS_ADMIN_PORT: '0',
    PAYGRESS_DATA_DIR: join(dataDir, 'data'),
    PAYGRESS_GRANT_KEY: randomBytes(32).toString('base64url'),
    PAYGRESS_SHUTDOWN_GRACE_MS: '1000',
    PAYGRESS_LOG_DECISIONS: process.env.BENCH_LOG_DECISIONS,
    // `all` means a line for every decision, refusals over the limit too.
    PAYGRESS_LOG_REFUSAL_LIMIT:
      process.env.BENCH_LOG_DECISIONS === 'all' ? '0' : undefined,
    PAYGRESS_SECP256K1: process.env.BENCH_SECP256K1,
  },
});
const level = (process.env.BENCH_LOG_LEVEL ?? 'info') as LevelWithSilent;
const app = await startApp({ config, logger: createLogger(level) });
reportReady({
  http: app.httpPort,
  grpc: app.grpcPort,
  admin: app.adminPort ?? 0,
});

process.once('SIGTERM', () => {
  void app.close().then(() => {
    rmSync(dataDir, { recursive: true, force: true });
    process.exit(0);
  });
});
