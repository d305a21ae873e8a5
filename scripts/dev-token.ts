/**
 * Prints one `cashuB…` token from a running Paygress dev mint, for trying
 * Paygress by hand: `npm run -s token -- [--mint URL] [--amount N]`.
 * Only the token goes to stdout; diagnostics go to stderr.
 */
import { parseArgs } from 'node:util';
import { Wallet, getEncodedToken } from '@cashu/cashu-ts';

const DEFAULT_MINT = 'http://127.0.0.1:3338';

/** Exit status of a usage error, as `paygress` gives it; 1 otherwise. */
const USAGE = 2;

function fail(message: string, status = 1): never {
  process.stderr.write(`dev-token: ${message}\n`);
  process.exit(status);
}

let values: { mint?: string; amount?: string; help?: boolean };
try {
  ({ values } = parseArgs({
    options: {
      mint: { type: 'string', default: DEFAULT_MINT },
      amount: { type: 'string', default: '1000' },
      help: { type: 'boolean', short: 'h' },
    },
  }));
} catch (err) {
  fail(`${(err as Error).message}; usage: [--mint URL] [--amount N]`, USAGE);
}
if (values.help) {
  process.stdout.write(
    `usage: npm run -s token -- [--mint URL] [--amount N]\nPrints one cashuB token of N sat (default 1000) minted at the dev mint (default ${DEFAULT_MINT}).\n`,
  );
  process.exit(0);
}
const mintUrl = (values.mint ?? DEFAULT_MINT).replace(/\/+$/, '');
const amount = Number(values.amount);
if (!Number.isSafeInteger(amount) || amount < 1) {
  fail('--amount must be a positive integer (sats)', USAGE);
}

const wallet = new Wallet(mintUrl, { unit: 'sat' });
try {
  await wallet.loadMint();
} catch (err) {
  const start =
    mintUrl === DEFAULT_MINT
      ? 'start one with: npm run dev (or npm run devmint)'
      : `is a Paygress dev mint running there? npm run devmint -- --port ${new URL(mintUrl).port || '<port>'} starts one`;
  fail(
    `cannot reach a mint at ${mintUrl} (${(err as Error).message}); ${start}`,
  );
}

const quote = await wallet.createMintQuoteBolt11(amount);
const proofs = await wallet.mintProofsBolt11(amount, quote);
process.stderr.write(`dev-token: minted ${amount} sat at ${mintUrl}\n`);
process.stdout.write(
  `${getEncodedToken({ mint: mintUrl, unit: 'sat', proofs })}\n`,
);
