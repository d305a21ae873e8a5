/**
 * CLI of the Paygress dev mint:
 * `node src/devmint/main.ts [--host H] [--port P] [--fee-ppk N] [--state FILE]`.
 * Defaults to 127.0.0.1:3338 (the usual Cashu mint port). For development
 * only: its Lightning backend is fake; its state lives in memory, or in
 * FILE across restarts.
 */
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { startDevMint, type DevMint } from './index.ts';

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

const USAGE =
  'usage: npm run devmint -- [--host H] [--port P] [--fee-ppk N] [--state FILE]';

let values: {
  host: string;
  port?: string | undefined;
  'fee-ppk'?: string | undefined;
  state?: string | undefined;
  help?: boolean | undefined;
};
try {
  ({ values } = parseArgs({
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string' },
      'fee-ppk': { type: 'string' },
      state: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  }));
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
  process.exit(2);
}
if (values.help) {
  process.stdout.write(
    `${USAGE}\nA Cashu mint for development, its Lightning backend fake; default 127.0.0.1:3338, state in memory unless --state.\n`,
  );
  process.exit(0);
}

let mint: DevMint;
try {
  mint = await startDevMint({
    host: values.host,
    port: integer(values.port, 'port', 3338),
    inputFeePpk: integer(values['fee-ppk'], 'fee-ppk', 0),
    log: true,
    ...(values.state ? { stateFile: values.state } : {}),
  });
} catch (err) {
  // A port in use, an unreadable state file: one line, not a stack trace.
  pino({
    name: 'paygress-devmint',
    timestamp: pino.stdTimeFunctions.isoTime,
  }).fatal(`dev mint could not start: ${(err as Error).message}`);
  process.exit(1);
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void mint.close());
}
// Started by Paygress (`devMint: true`) over an IPC channel: when Paygress
// goes, however it goes, the channel closes and the mint stops with it
// instead of holding its port as an orphan.
if (process.channel) {
  process.channel.unref();
  process.once('disconnect', () => void mint.close());
}
