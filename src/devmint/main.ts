/**
 * CLI of the Paygress dev mint:
 * `node src/devmint/main.ts [--host H] [--port P] [--fee-ppk N]`.
 * Defaults to 127.0.0.1:3338 (the usual Cashu mint port). For development
 * only: its Lightning backend is fake and its state lives in memory.
 */
import { parseArgs } from 'node:util';
import { startDevMint } from './index.ts';

function integer(
  value: string | undefined,
  name: string,
  fallback: number,
): number {
  if (value === undefined) return fallback;
  const parsed = Number(value);
  if (!Number.isSafeInteger(parsed) || parsed < 0) {
    throw new TypeError(`--${name} must be a non-negative integer`);
  }
  return parsed;
}

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string' },
    'fee-ppk': { type: 'string' },
  },
});

const mint = await startDevMint({
  host: values.host,
  port: integer(values.port, 'port', 3338),
  inputFeePpk: integer(values['fee-ppk'], 'fee-ppk', 0),
  log: true,
});

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void mint.close());
}
