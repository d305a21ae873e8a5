#!/usr/bin/env node
/**
 * The `paygress` command.
 *
 *   paygress [serve] [--config FILE]            run the sidecar (default)
 *   paygress check-config FILE                  validate a configuration
 *   paygress wallet balance|export [--config FILE]
 *                                               look at or take out the money
 *
 * `--config FILE` (or `--config=FILE`) may stand anywhere; anything else
 * not listed here is a usage error (exit 2), never silently ignored.
 */
import { parseArgs } from 'node:util';
import { checkConfig } from '../src/cli/check-config.ts';
import { serve } from '../src/main.ts';

const USAGE = `usage:
  paygress [serve] [--config FILE]   run Paygress
  paygress check-config FILE         validate a configuration file
  paygress wallet balance [--config FILE]
                                     stored value per mint and unit
  paygress wallet export [--config FILE]
                                     take the stored proofs out as tokens
`;

/** What the arguments ask for, or why they cannot be read. */
type Command =
  | { run: 'serve' | 'balance' | 'export'; config: string | undefined }
  | { run: 'check-config'; file: string }
  | { run: 'help' }
  | { problem: string };

function read(args: string[]): Command {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        config: { type: 'string', multiple: true },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    return { problem: (err as Error).message };
  }
  const { values, positionals } = parsed;
  if (values.help || positionals[0] === 'help') return { run: 'help' };

  const [command = 'serve', ...rest] = positionals;
  const files = values.config ?? [];
  if (files.length > 1) return { problem: '--config given more than once' };
  const config = files[0];
  if (config === '') return { problem: '--config needs a file' };
  if (command === 'serve' && rest.length === 0) return { run: 'serve', config };
  if (
    command === 'wallet' &&
    rest.length === 1 &&
    (rest[0] === 'balance' || rest[0] === 'export')
  ) {
    return { run: rest[0], config };
  }
  if (command === 'check-config' && rest.length === 1 && !config) {
    return { run: 'check-config', file: rest[0]! };
  }
  return { problem: problemOf(command, rest, config) };
}

/** What is wrong with a command line `read` could not take. */
function problemOf(
  command: string,
  rest: readonly string[],
  config: string | undefined,
): string {
  if (command === 'wallet') {
    return rest.length === 0
      ? 'wallet needs balance or export'
      : `wallet ${rest.join(' ')}: expected balance or export, alone`;
  }
  if (command === 'check-config') {
    if (config !== undefined)
      return 'check-config takes the file itself, not --config';
    return rest.length === 0
      ? 'check-config needs the file to check'
      : 'check-config checks one file';
  }
  if (command === 'serve') return `serve takes no arguments: ${rest.join(' ')}`;
  return `unknown command: ${command}`;
}

async function main(args: string[]): Promise<number> {
  const command = read(args);
  if ('problem' in command) {
    process.stderr.write(`${command.problem}\n${USAGE}`);
    return 2;
  }
  switch (command.run) {
    case 'help':
      process.stdout.write(USAGE);
      return 0;
    case 'serve':
      return serve(command.config);
    case 'check-config': {
      const result = checkConfig([command.file], process.env);
      for (const line of result.out) process.stdout.write(`${line}\n`);
      for (const line of result.err) process.stderr.write(`${line}\n`);
      return result.code;
    }
    default: {
      const { wallet } = await import('../src/cli/wallet.ts');
      return wallet(command.run, command.config, process.env);
    }
  }
}

process.exitCode = await main(process.argv.slice(2));
