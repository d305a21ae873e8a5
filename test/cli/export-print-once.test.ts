/**
 * `paygress wallet export` records each token before it prints it, and a
 * later export prints the recorded tokens not yet known printed. One
 * export runs at a time, so a second one never takes the token the first
 * is still writing for one left unprinted. A token written but not
 * recorded as printed (the store failing at that moment) is printed again
 * by the next export, and the export that wrote it says so: printed twice
 * rather than lost.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import type { Test } from 'tap';
import { startDevMint } from '../../src/devmint/index.ts';
import { SqliteWalletStore } from '../../src/store/sqlite-wallet-store.ts';
import { oneSatProofs, recordProofs } from '../support/many-proofs.ts';
import { NODE, PAYGRESS_BIN } from '../support/paygress-process.ts';

// Enough 1 sat proofs for more tokens of 100 than a pipe's buffer holds.
const PROOFS = 2000;

const mint = await startDevMint({ dleq: false });
t.teardown(() => mint.close());

/** A data directory whose store holds PROOFS unspent 1 sat proofs. */
async function filledStore(t: Test): Promise<string> {
  const dataDir = mkdtempSync(join(tmpdir(), 'paygress-export-once-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const proofs = await oneSatProofs(mint.url, PROOFS);
  const store = new SqliteWalletStore({ dataDir });
  try {
    recordProofs(store, mint.url, proofs, 4);
  } finally {
    store.close();
  }
  return dataDir;
}

interface Export {
  child: ChildProcess;
  /** Starts reading standard output; resolves with all of it at exit. */
  read(): Promise<{ code: number | null; stdout: string; stderr: string }>;
}

/** Starts `paygress wallet export` with nobody reading its output yet. */
function startExport(t: Test, dataDir: string): Export {
  const child = spawn(NODE, [PAYGRESS_BIN, 'wallet', 'export'], {
    env: {
      PATH: process.env.PATH ?? '',
      PAYGRESS_MINTS: mint.url,
      PAYGRESS_DATA_DIR: dataDir,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.pause();
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += String(chunk)));
  const closed = new Promise<number | null>((resolve) =>
    child.once('close', resolve),
  );
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
    }
    await closed;
  });
  return {
    child,
    async read() {
      let stdout = '';
      child.stdout!.on('data', (chunk: Buffer) => (stdout += String(chunk)));
      child.stdout!.resume();
      const code = await Promise.race([
        closed,
        sleep(30_000).then(() => {
          child.kill('SIGKILL');
          return null;
        }),
      ]);
      return { code, stdout, stderr };
    },
  };
}

/** Waits (20 s at most) until `e` is held up writing a recorded token. */
async function waitUntilStuck(dataDir: string, e: Export): Promise<string[]> {
  let last = '';
  let stableSince = Date.now();
  for (const deadline = Date.now() + 20_000; Date.now() < deadline;) {
    await sleep(200);
    if (e.child.exitCode !== null) break;
    const store = new SqliteWalletStore({ dataDir });
    let unprinted: string[];
    try {
      unprinted = store.unprintedExports().map((x) => x.token);
    } finally {
      store.close();
    }
    const now = unprinted.join('\n');
    if (now !== last) {
      last = now;
      stableSince = Date.now();
    } else if (unprinted.length > 0 && Date.now() - stableSince > 1000) {
      return unprinted;
    }
  }
  throw new Error('the export never waited on its output');
}

const tokens = (stdout: string) => stdout.split('\n').filter(Boolean);

t.test(
  'an export started while another writes a token is refused',
  async (t) => {
    const dataDir = await filledStore(t);
    const first = startExport(t, dataDir);
    const [writing] = await waitUntilStuck(dataDir, first);

    // The operator runs export again in another terminal meanwhile.
    const second = await startExport(t, dataDir).read();
    t.equal(second.code, 1, 'the second export is refused');
    t.match(
      second.stderr,
      'another paygress wallet command (an export, a backup, a restore) is running',
    );

    // The first one's reader takes its output after all.
    const firstOut = await first.read();
    const a = tokens(firstOut.stdout);
    const b = tokens(second.stdout);
    t.ok(a.includes(writing!), 'the first export printed its token');
    t.notOk(
      b.includes(writing!),
      'the second export did not print the token the first was writing',
    );
    t.equal(
      a.filter((tok) => b.includes(tok)).length,
      0,
      'no token printed by both',
    );
  },
);

t.test(
  'a token written but not recorded printed is printed again, and said so',
  async (t) => {
    const dataDir = await filledStore(t);
    const first = startExport(t, dataDir);
    const [writing] = await waitUntilStuck(dataDir, first);

    // Another connection holds the store's write lock past the busy
    // timeout while the token is written (a disk that filled, a long
    // write elsewhere: recording it printed fails).
    const db = new DatabaseSync(join(dataDir, 'wallet.sqlite'));
    db.exec('BEGIN IMMEDIATE');
    const firstOut = first.read();
    await sleep(7000);
    db.exec('ROLLBACK');
    db.close();
    const out = await firstOut;
    t.ok(tokens(out.stdout).includes(writing!), 'the token was written');
    t.equal(out.code, 1, 'and the export fails');

    t.match(
      out.stderr,
      'paygress wallet: a token was printed, but the store could not record that',
    );
    t.match(out.stderr, 'the next export may print it again: receive it once');
    t.notMatch(out.stderr, /\n\s+at /, 'the first export ends without a trace');

    const again = await startExport(t, dataDir).read();
    t.equal(again.code, 0);
    t.ok(
      tokens(again.stdout).includes(writing!),
      'the next export prints it again rather than lose it',
    );
  },
);
