/**
 * Runs the dev mint as a separate process for `paygress` with
 * `devMint: true`. It shares no state with Paygress, which talks to it over
 * HTTP exactly as to a production mint.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

/** Where the dev mint listens when Paygress starts it. */
export const DEV_MINT_URL = 'http://127.0.0.1:3338';

/** A dev mint child process. */
export interface DevMintProcess {
  readonly url: string;
  stop(): Promise<void>;
}

/**
 * Starts the dev mint on 127.0.0.1:3338, or uses one already answering
 * there, and resolves once it answers `/v1/info`. It keeps its keys and
 * ledger in `stateFile`, so the dev ecash Paygress stored in earlier runs
 * stays good (and spent proofs stay spent).
 */
export async function startDevMintProcess(
  stateFile: string,
): Promise<DevMintProcess> {
  if (await answers(DEV_MINT_URL)) {
    return { url: DEV_MINT_URL, stop: async () => {} };
  }

  const entry = fileURLToPath(new URL('./devmint/main.ts', import.meta.url));
  const child: ChildProcess = spawn(
    process.execPath,
    [entry, '--host', '127.0.0.1', '--port', '3338', '--state', stateFile],
    // The IPC channel ties the mint's life to ours (see devmint/main.ts).
    { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] },
  );

  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) break;
    if (await answers(DEV_MINT_URL)) {
      return { url: DEV_MINT_URL, stop: () => stopChild(child) };
    }
    await sleep(100);
  }
  child.kill('SIGKILL');
  throw new Error(
    `the dev mint did not start on ${DEV_MINT_URL} (its own line above says why)`,
  );
}

async function answers(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/v1/info`, {
      signal: AbortSignal.timeout(500),
    });
    await res.body?.cancel();
    return res.ok;
  } catch {
    return false;
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await Promise.race([exited, sleep(2000)]);
  if (child.exitCode === null) child.kill('SIGKILL');
}
