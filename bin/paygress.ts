#!/usr/bin/env node
/**
 * The `paygress` command.
 *
 *   paygress [serve] [--config FILE]   run the sidecar (default)
 *   paygress check-config FILE         validate a configuration, start nothing
 *   paygress wallet balance|export     look at or take out the stored money
 */
import { checkConfig } from '../src/cli/check-config.ts';
import { serve } from '../src/main.ts';

const USAGE = `usage:
  paygress [serve] [--config FILE]   run Paygress
  paygress check-config FILE         validate a configuration file
  paygress wallet balance            stored value per mint and unit
  paygress wallet export             take the stored proofs out as tokens
`;

async function main(args: string[]): Promise<number> {
  const [command = 'serve', ...rest] = args;

  if (command === 'serve' || command === '--config') {
    const options = command === 'serve' ? rest : args;
    return serve(options[0] === '--config' ? options[1] : undefined);
  }
  if (command === 'check-config') {
    const result = checkConfig(rest, process.env);
    for (const line of result.out) process.stdout.write(`${line}\n`);
    for (const line of result.err) process.stderr.write(`${line}\n`);
    return result.code;
  }
  if (command === 'wallet') {
    const { wallet } = await import('../src/cli/wallet.ts');
    return wallet(rest, process.env);
  }
  if (command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(USAGE);
    return 0;
  }
  process.stderr.write(`unknown command: ${command}\n${USAGE}`);
  return 2;
}

process.exitCode = await main(process.argv.slice(2));
