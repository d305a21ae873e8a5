/**
 * Runs the dev mint as a separate process for `paygress` with
 * `devMint: true`. It shares no state with Paygress, which talks to it over
 * HTTP exactly as to a production mint.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { DEV_MINT_VERSION } from './devmint/info.ts';

/** Where the dev mint listens when Paygress starts it. */
export const DEV_MINT_URL = 'http://127.0.0.1:3338';

/** A dev mint child process. */
export interface DevMintProcess {
  readonly url: string;
  /** True when a dev mint was already running there and is used as is. */
  readonly reused: boolean;
  stop(): Promise<void>;
}

/**
 * Starts the dev mint on 127.0.0.1:3338, or uses a Paygress dev mint
 * already answering there, and resolves once it answers `/v1/info`. It
 * keeps its keys and ledger in `stateFile`, so the dev ecash Paygress
 * stored in earlier runs stays good (and spent proofs stay spent). Any
 * other server on that port (3338 is where Cashu mints usually listen) is
 * refused, never trusted.
 */
export async function startDevMintProcess(
  stateFile: string,
): Promise<DevMintProcess> {
  const running = await infoOf(DEV_MINT_URL);
  if (running !== undefined) {
    if (running.version !== DEV_MINT_VERSION) {
      const says =
        typeof running.name === 'string' || typeof running.version === 'string'
          ? `it says ${JSON.stringify(running.name ?? '')}, version ${JSON.stringify(running.version ?? '')}`
          : 'it does not answer /v1/info as a mint does';
      throw new Error(
        `${DEV_MINT_URL} is taken by a server that is not the Paygress dev mint (${says}): stop it, or list your mint in mints instead of using devMint`,
      );
    }
    return { url: DEV_MINT_URL, reused: true, stop: async () => {} };
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
    if ((await infoOf(DEV_MINT_URL)) !== undefined) {
      return { url: DEV_MINT_URL, reused: false, stop: () => stopChild(child) };
    }
    await sleep(100);
  }
  child.kill('SIGKILL');
  throw new Error(
    `the dev mint did not start on ${DEV_MINT_URL} (its own line above says why)`,
  );
}

/** What a server at `url` says in `/v1/info`; undefined if nothing answers. */
async function infoOf(
  url: string,
): Promise<{ name?: unknown; version?: unknown } | undefined> {
  let res: Response;
  try {
    res = await fetch(`${url}/v1/info`, { signal: AbortSignal.timeout(500) });
  } catch {
    return undefined;
  }
  // Something listens: whatever it answers, it is not to be replaced.
  const info = (await res.json().catch(() => ({}))) as unknown;
  return typeof info === 'object' && info !== null ? info : {};
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  // Unreferenced: a wait the exit made moot must not keep Paygress's own
  // process alive for the rest of the two seconds.
  await Promise.race([exited, sleep(2000, undefined, { ref: false })]);
  if (child.exitCode === null) child.kill('SIGKILL');
}
