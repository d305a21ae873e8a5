#!/usr/bin/env node
/**
 * The `paygress` command.
 *
 *   paygress [serve] [--config FILE]            run the sidecar (default)
 *   paygress check-config FILE                  validate a configuration
 *   paygress wallet balance|export [--config FILE]
 *                                               look at or take out the money
 *   paygress wallet backup|restore FILE [--config FILE]
 *                                               copy the store, or put one back
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
  paygress wallet backup FILE [--config FILE]
                                     copy the wallet store, while serving
  paygress wallet restore FILE [--config FILE]
                                     put a backup back, Paygress stopped
`;

/** What the arguments ask for, or why they cannot be read. */
type Command =
  | { run: 'serve' | 'balance' | 'export'; config: string | undefined }
  | { run: 'check-config'; file: string }
  | { run: 'backup' | 'restore'; file: string; config: string | undefined }
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

  switch (command) {
    case 'serve':
      return rest.length === 0
        ? { run: 'serve', config }
        : { problem: `serve takes no arguments: ${rest.join(' ')}` };
    case 'wallet': {
      const [sub, ...more] = rest;
      if ((sub === 'balance' || sub === 'export') && more.length === 0) {
        return { run: sub, config };
      }
      if (sub === 'backup' || sub === 'restore') {
        return more.length === 1 && more[0] !== ''
          ? { run: sub, file: more[0]!, config }
          : {
              problem: `wallet ${sub} needs one file: the ${sub === 'backup' ? 'copy to make' : 'backup to put back'}`,
            };
      }
      return {
        problem:
          sub === undefined
            ? 'wallet needs balance, export, backup or restore'
            : `wallet ${rest.join(' ')}: expected balance or export alone, or backup or restore and a file`,
      };
    }
    case 'check-config':
      if (config !== undefined) {
        return { problem: 'check-config takes the file itself, not --config' };
      }
      if (rest.length === 0) {
        return { problem: 'check-config needs the file to check' };
      }
      return rest.length === 1
        ? { run: 'check-config', file: rest[0]! }
        : { problem: 'check-config checks one file' };
    default:
      return { problem: `unknown command: ${command}` };
  }
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
    case 'backup':
    case 'restore': {
      const { walletFile } = await import('../src/cli/wallet-files.ts');
      // Leaves as the other wallet commands do (below).
      process.exit(
        await walletFile(
          command.run,
          command.file,
          command.config,
          process.env,
        ),
      );
    }
    default: {
      const { wallet } = await import('../src/cli/wallet.ts');
      // Not through the event loop draining, which would close the
      // wallet store's connection (see wallet()); its output is written.
      process.exit(await wallet(command.run, command.config, process.env));
    }
  }
}

process.exitCode = await main(process.argv.slice(2));
