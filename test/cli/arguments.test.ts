/**
 * How `paygress` reads its arguments: `--config FILE` or `--config=FILE`
 * anywhere, and anything it does not know refused with the usage (exit 2)
 * rather than ignored, which used to start a server when a wallet command
 * was meant, or read no file at all.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SqliteWalletStore } from '../../src/store/sqlite-wallet-store.ts';
import { NODE, PAYGRESS_BIN } from '../support/paygress-process.ts';
import { tempDir } from '../support/temp-dir.ts';

const dir = tempDir('paygress-args-');
const good = join(dir, 'good.yaml');
writeFileSync(
  good,
  `mints: [https://mint.example.com]\ndataDir: ${join(dir, 'data')}\n`,
);
// Read at start-up and refused before anything listens.
const badPort = join(dir, 'bad-port.yaml');
writeFileSync(
  badPort,
  'mints: [https://mint.example.com]\nhttp: { port: -1 }\n',
);

/**
 * Runs `run` on every case, three at a time: a dozen Node processes
 * starting at once on a busy machine could outlast the timeout.
 */
async function inTurn<C, R>(
  cases: readonly C[],
  run: (c: C) => Promise<R>,
): Promise<R[]> {
  const results: R[] = [];
  for (let i = 0; i < cases.length; i += 3) {
    results.push(...(await Promise.all(cases.slice(i, i + 3).map(run))));
  }
  return results;
}

/** Runs `paygress ...args` with nothing but PATH in its environment. */
function paygress(
  ...args: string[]
): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(
      NODE,
      [PAYGRESS_BIN, ...args],
      { env: { PATH: process.env.PATH ?? '' }, timeout: 20_000 },
      (error, out, err) =>
        resolve({ code: error ? (error.code as number) : 0, out, err }),
    );
  });
}

t.test('--config may come before the command', async (t) => {
  // A store to read (the command makes none).
  new SqliteWalletStore({ dataDir: join(dir, 'data') }).close();
  const balance = await paygress('--config', good, 'wallet', 'balance');
  t.equal(balance.code, 0, balance.err);
  t.equal(balance.out, 'the wallet is empty\n');
});

t.test('--config=FILE is read', async (t) => {
  const cases = [
    ['serve', `--config=${badPort}`],
    [`--config=${badPort}`],
    ['--config', badPort, 'serve'],
  ];
  const runs = await inTurn(cases, (args) => paygress(...args));
  runs.forEach((run, i) => {
    t.equal(run.code, 2, cases[i]!.join(' '));
    t.match(run.err, /http\.port/, 'the file was read');
  });
  const balance = await paygress('wallet', 'balance', `--config=${good}`);
  t.equal(balance.out, 'the wallet is empty\n');
});

t.test('anything else is refused with the usage', async (t) => {
  const cases = [
    ['serve', 'extra'],
    ['--bogus'],
    ['serve', '--config'],
    ['wallet'],
    ['wallet', 'balance', 'extra'],
    ['wallet', 'spend'],
    ['check-config'],
    ['check-config', good, good],
    ['check-config', good, '--config', good],
    ['launch'],
    ['--config=', 'wallet', 'balance'],
    ['--config', good, 'serve', '--config', good],
  ];
  const runs = await inTurn(cases, (args) => paygress(...args));
  runs.forEach((run, i) => {
    const args = cases[i]!.join(' ');
    t.equal(run.code, 2, args);
    t.match(run.err, /^usage:$/m, `${args}: usage shown`);
    t.equal(run.out, '');
  });
});

t.test('the usage error says what is wrong', async (t) => {
  const cases: [string[], string][] = [
    [['launch'], 'unknown command: launch'],
    [['wallet'], 'wallet needs balance, export, backup or restore'],
    [['wallet', 'backup'], 'wallet backup needs one file: the copy to make'],
    [
      ['wallet', 'restore', 'a', 'b'],
      'wallet restore needs one file: the backup to put back',
    ],
    [
      ['wallet', 'export', 'x'],
      'wallet export x: expected balance or export alone, or backup or restore and a file',
    ],
    [['check-config'], 'check-config needs the file to check'],
    [['serve', 'extra'], 'serve takes no arguments: extra'],
    [['--config=', 'serve'], '--config needs a file'],
  ];
  const runs = await inTurn(cases, ([args]) => paygress(...args));
  runs.forEach((run, i) => {
    t.equal(run.err.split('\n')[0], cases[i]![1]);
  });
});

t.test('help', async (t) => {
  const runs = await Promise.all(
    [['help'], ['--help'], ['-h']].map((args) => paygress(...args)),
  );
  for (const run of runs) {
    t.equal(run.code, 0);
    t.match(run.out, /^usage:\n {2}paygress \[serve\] \[--config FILE\]/);
  }
});
