/**
 * `paygress wallet ...` as a child process on a data directory. Not with
 * spawnSync: a dev mint often runs in the test's own process, and an
 * event loop stopped meanwhile lets its idle connections close under
 * their clients.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { NODE, PAYGRESS_BIN } from './paygress-process.ts';

/** Runs the command; one that runs past 30 s is killed (code null). */
export async function walletCommand(
  dataDir: string,
  mintUrl: string,
  ...args: string[]
): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn(NODE, [PAYGRESS_BIN, 'wallet', ...args], {
    env: {
      PATH: process.env.PATH ?? '',
      PAYGRESS_MINTS: mintUrl,
      PAYGRESS_DATA_DIR: dataDir,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  // A command that never ends fails its test, not the run.
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const [code] = (await once(child, 'close')) as [number | null];
  clearTimeout(timer);
  return { code, out, err };
}
