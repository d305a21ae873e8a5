/**
 * `paygress wallet balance` and `paygress wallet export`: how much money
 * the store holds, and taking it out as Cashu tokens.
 *
 * Export first asks each mint which stored proofs are still unspent
 * (NUT-07, in batches a mint accepts), marks the spent ones, then writes
 * the rest as `cashuB` tokens of at most TOKEN_PROOFS proofs, one per
 * line. Each token is recorded in the store with the marking of its
 * proofs, in one transaction, and printed once that is on disk: a
 * repeated export never hands out a proof twice, neither a reader that
 * stops reading nor a slow disk holds up a payment of a serving Paygress
 * (the sync runs after the commit, out of SQLite's write lock), and a
 * token that could not be printed stays in the store for the next export
 * to print first.
 */
import { fsyncSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConfigError, loadConfig } from '../config.ts';
import { StoreFailedError } from '../core/errors.ts';
import type { ProofState } from '../core/ports.ts';
import { encodeToken, readTokenHeader } from '../core/token.ts';
import { CashuMintGateway } from '../mint/cashu-gateway.ts';
import {
  LockHeldError,
  lockExport,
  type DataDirLock,
} from '../store/data-dir-lock.ts';
import {
  SqliteWalletStore,
  WALLET_FILE,
} from '../store/sqlite-wallet-store.ts';
import { RESTORE_MARKER, unsafeToOpen } from '../store/restore-marker.ts';
import { makeDataDir } from '../store/data-dir.ts';
import { isBusy, isDamaged, RESTORE_ADVICE } from '../store/sqlite-errors.ts';
import { say, show, writeFully } from './write-fully.ts';
import { CONFIG_HINT } from './wallet-files.ts';

/**
 * Ys per checkstate request. Mints cap the items of one request and refuse
 * a larger one whole (the dev mint, like Nutshell by default, at 1000), so a store
 * of more proofs than that is asked about in several requests.
 */
export const CHECK_BATCH = 1000;

/**
 * Pause between two batches of proofs marked spent, in ms: long enough
 * for a payment of a serving Paygress waiting for SQLite's write lock to
 * take it (its waits grow to 25 ms and more), where a batch of
 * CHECK_BATCH holds the lock about 10 ms.
 */
const SPENT_BATCH_PAUSE_MS = 30;

/**
 * Proofs per printed token. 100, well under the 1000 inputs a mint takes
 * in one swap, so a wallet receives each token in one request even from a
 * mint with a lower cap; and a token of 100 proofs is about 17 KB (32 KB
 * with their DLEQ proofs), while one of 1000 is over the 128 KiB Linux
 * allows a single command-line argument (`cashu receive "$token"` would
 * fail) and awkward to paste.
 */
export const TOKEN_PROOFS = 100;

/**
 * Whether `file` is not there at all; a file that cannot be looked at
 * (permission) is left for opening it to say why.
 */
function isMissing(file: string): boolean {
  try {
    statSync(file);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT';
  }
}

/**
 * Runs `paygress wallet balance|export`; resolves with the exit code, to
 * leave with through `process.exit` (see the end).
 */
export async function wallet(
  command: 'balance' | 'export',
  file: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
): Promise<number> {
  let dataDir: string;
  let mints: string[];
  let timeoutMs: number;
  try {
    const config = loadConfig({
      ...(file ? { file } : {}),
      env,
      keyless: true,
    });
    dataDir = config.dataDir;
    mints = config.mints.map((m) => m.url);
    timeoutMs = config.mint.timeoutMs;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    say(`${err.message}\n${CONFIG_HINT}\n`);
    return 2;
  }

  // Opening a store creates it: a mistyped data directory would read as
  // an empty wallet, the money seemingly gone.
  const storeFile = join(dataDir, WALLET_FILE);
  // Nothing there at all: said without making the commands' lock file.
  if (
    isMissing(dataDir) ||
    (isMissing(storeFile) &&
      isMissing(`${storeFile}-wal`) &&
      isMissing(join(dataDir, RESTORE_MARKER)))
  ) {
    say(noStore(storeFile));
    return 1;
  }
  try {
    // Makes nothing where the directory is; says what is wrong where it
    // cannot be one (a part of its path a file).
    makeDataDir(dataDir);
  } catch (err) {
    say(`paygress wallet: ${(err as Error).message}\n`);
    return 1;
  }
  // One wallet command at a time: a restore moves the store's files, and
  // a store opened between two of its moves would be made empty. A
  // balance waits a while for another command; an export does not.
  let commands: DataDirLock;
  try {
    commands = await lockCommands(dataDir, command === 'balance' ? 10_000 : 0);
  } catch (err) {
    say(`paygress wallet: ${(err as Error).message}\n`);
    return 1;
  }
  try {
    return await openAndRun(command, storeFile, dataDir, mints, timeoutMs);
  } finally {
    commands.release();
  }
}

const noStore = (storeFile: string) =>
  `paygress wallet: no wallet store at ${storeFile}; is dataDir (PAYGRESS_DATA_DIR) the one Paygress serves with? Nothing was created.\n`;

/** Takes the commands' lock, trying every 100 ms for `waitMs`. */
async function lockCommands(
  dataDir: string,
  waitMs: number,
): Promise<DataDirLock> {
  const until = Date.now() + waitMs;
  for (;;) {
    try {
      return lockExport(dataDir);
    } catch (err) {
      if (!(err instanceof LockHeldError) || Date.now() >= until) throw err;
      await sleep(100);
    }
  }
}

async function openAndRun(
  command: 'balance' | 'export',
  storeFile: string,
  dataDir: string,
  mints: string[],
  timeoutMs: number,
): Promise<number> {
  const unsafe = unsafeToOpen(dataDir, storeFile);
  if (unsafe !== undefined) {
    say(`paygress wallet: ${unsafe}\n`);
    return 1;
  }
  if (isMissing(storeFile)) {
    say(noStore(storeFile));
    return 1;
  }
  let store: SqliteWalletStore;
  try {
    store = new SqliteWalletStore({ dataDir });
  } catch (err) {
    say(`paygress wallet: ${(err as Error).message}\n`);
    return 1;
  }
  let code: number;
  try {
    // A damaged store may still open, and read numbers off pages that
    // are no longer its own.
    const damage = store.damage();
    if (damage === undefined) {
      code = await run(command, store, mints, timeoutMs);
    } else {
      say(
        `paygress wallet: ${storeFile} is damaged (${damage}): ${RESTORE_ADVICE}\n`,
      );
      code = 1;
    }
  } catch (err) {
    if (isBusy(err instanceof StoreFailedError ? err.cause : err)) {
      say(
        `paygress wallet: ${storeFile} is locked by another process (a Paygress whose sync failed holds it until it has stopped): nothing else is marked exported; run the command again once it has\n`,
      );
    } else if (err instanceof StoreFailedError) {
      const cause = (err.cause as Error | undefined)?.message;
      say(
        `paygress wallet: ${err.message}${cause ? ` (${cause})` : ''}; every token printed is recorded, and one recorded but not printed is printed first by the next export: run it again once the disk is sound\n`,
      );
    } else if (isDamaged(err)) {
      // A damaged store: a file to restore, not a bug to trace.
      say(
        `paygress wallet: ${storeFile}: ${(err as Error).message}: ${RESTORE_ADVICE}\n`,
      );
    } else {
      throw err;
    }
    code = 1;
  }
  // A failed sync: the store takes its last steps (wal-index.ts), still
  // without closing the connection.
  if (store.failed) store.close();
  // The store is not closed, and the caller leaves with process.exit,
  // which closes no connection: SQLite, closing the last connection,
  // copies the log into the database, and the log may be one a Paygress
  // whose sync failed left for the next start to recover, or this
  // command's own after a failed sync (docs/wallet.md). Every change
  // made here was committed, every export synced; the log keeps them.
  return code;
}

async function run(
  command: 'balance' | 'export',
  store: SqliteWalletStore,
  mints: string[],
  timeoutMs: number,
): Promise<number> {
  if (command === 'balance') return balance(store);
  return exportAll(store, mints, timeoutMs);
}

function balance(store: SqliteWalletStore): number {
  const rows = store.balances();
  // Out of the balance, yet not in anyone's hands: an export recorded
  // them, and could not print them.
  const unprinted = new Map<string, number>();
  for (const { token } of store.unprintedExports()) {
    const { mint, unit, amount } = readTokenHeader(token, Infinity);
    const key = `${mint}\t${unit}`;
    unprinted.set(key, (unprinted.get(key) ?? 0) + amount);
  }
  const lines = rows.map(
    (row) =>
      `${row.mint}\t${row.available} ${row.unit} available\t${row.pending} ${row.unit} pending\n`,
  );
  for (const [key, amount] of unprinted) {
    const [mint, unit] = key.split('\t');
    lines.push(
      `${mint}\t${amount} ${unit} in tokens an export recorded and could not print: the next export prints them\n`,
    );
  }
  return show(lines.length === 0 ? 'the wallet is empty\n' : lines.join(''))
    ? 0
    : 1;
}

async function exportAll(
  store: SqliteWalletStore,
  mints: readonly string[],
  timeoutMs: number,
): Promise<number> {
  const gateway = new CashuMintGateway({
    mints: store
      .balances()
      .map((b) => b.mint)
      .concat(mints),
    timeoutMs,
  });
  let failed = false;
  let exported = 0;
  // Standard output or the store failed: nothing more can be exported.
  let stopped = false;
  try {
    // Tokens an earlier export recorded but could not print come first,
    // once on disk: that export may have died before its sync.
    const earlier = store.unprintedExports();
    if (earlier.length > 0) await store.durable();
    for (const recorded of earlier) {
      if (!(await print(store, recorded))) return 1;
      exported++;
      const { mint, amount, unit } = readTokenHeader(recorded.token, Infinity);
      say(
        `${mint}: a token of ${amount} ${unit} an earlier export could not print, printed now\n`,
      );
    }
    for (const { mint, unit } of store.balances()) {
      const proofs = store.unspent(mint, unit);
      if (proofs.length === 0) continue;

      let known: Set<string>;
      try {
        known = new Set((await gateway.keysets(mint)).map((k) => k.id));
      } catch (err) {
        say(
          `${mint}: not exported, the mint could not be asked for its keysets (${(err as Error).message})\n`,
        );
        failed = true;
        continue;
      }
      let states: ProofState[];
      try {
        states = await checkInBatches(
          gateway,
          mint,
          proofs.map((p) => p.y),
        );
      } catch (err) {
        // Nothing of this mint is marked: a later export asks again.
        say(
          `${mint}: not exported, the mint could not be asked which of ${proofs.length} ${unit} proofs are unspent (${(err as Error).message})\n`,
        );
        failed = true;
        continue;
      }
      const spent = proofs.filter((_, i) => states[i] === 'SPENT');
      // A mint reports proofs of keysets it never had as unspent; they are
      // worthless there, so they are left in the store and named.
      const unspent = proofs.filter(
        (p, i) => states[i] === 'UNSPENT' && known.has(p.id),
      );
      const foreign = proofs.filter((p) => !known.has(p.id));
      if (foreign.length > 0) {
        say(
          `${mint}: ${foreign.length} proofs of keysets the mint does not list were not exported\n`,
        );
      }
      if (spent.length > 0) {
        // A batch at a time, with a pause between: each holds SQLite's
        // write lock, which a serving Paygress's payments wait for.
        for (let i = 0; i < spent.length; i += CHECK_BATCH) {
          if (i > 0) await sleep(SPENT_BATCH_PAUSE_MS);
          store.markSpent(spent.slice(i, i + CHECK_BATCH).map((p) => p.y));
        }
        const value = spent.reduce((sum, p) => sum + p.amount, 0);
        say(
          `${mint}: ${spent.length} proofs (${value} ${unit}) were already spent at the mint: marked spent, not exported\n`,
        );
      }

      let tokens = 0;
      let count = 0;
      let total = 0;
      for (let i = 0; i < unspent.length && !stopped; i += TOKEN_PROOFS) {
        const chunk = unspent.slice(i, i + TOKEN_PROOFS);
        // Only what the transaction took: Paygress may have refunded, or
        // another export taken, some of them since they were read.
        let taken: typeof chunk = [];
        const recorded = await store.exportProofs(
          chunk.map((p) => p.y),
          (marked) => {
            taken = chunk.filter((p) => marked.has(p.y));
            return encodeToken(mint, unit, taken, { dleq: true });
          },
        );
        if (recorded === undefined) continue;
        if (!(await print(store, recorded))) {
          failed = true;
          stopped = true;
          break;
        }
        tokens++;
        count += taken.length;
        total += taken.reduce((sum, p) => sum + p.amount, 0);
      }
      if (tokens > 0) {
        exported += tokens;
        say(
          `${mint}: exported ${total} ${unit} in ${count} proofs, ${tokens === 1 ? 'one token' : `${tokens} tokens`}\n`,
        );
      }
      // The other mints' tokens cannot be written or recorded either.
      if (stopped) break;
    }
  } finally {
    await gateway.close();
  }
  if (exported === 0 && !failed) say('nothing to export\n');
  return failed ? 1 : 0;
}

/**
 * Writes an exported token in full and records it printed. The write is
 * outside any transaction: a reader that stops reading (a pager left
 * open) holds up this export, never the payments of a serving Paygress.
 * False when it could not be written (the token then stays in the store
 * and the next export prints it first), or written but not recorded as
 * printed on disk (the next export may print it again).
 */
async function print(
  store: SqliteWalletStore,
  exported: { id: number; token: string },
): Promise<boolean> {
  try {
    writeFully(1, `${exported.token}\n`);
    // Into a file, the token must be on disk before the store says it
    // was printed, which it syncs: a power cut in between would lose it.
    syncOutput();
  } catch (err) {
    say(
      `paygress wallet: could not write a token to standard output (${(err as Error).message}); it stays in the store, and the next export prints it first\n`,
    );
    return false;
  }
  try {
    await store.printedExport(exported.id);
  } catch (err) {
    say(
      `paygress wallet: a token was printed, but the store could not record that (${(err as Error).message}); the next export may print it again: receive it once\n`,
    );
    return false;
  }
  return true;
}

/** fsync of standard output when it is a file; pipes and terminals have none. */
function syncOutput(): void {
  try {
    fsyncSync(1);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL' && code !== 'ENOTSUP' && code !== 'EROFS') throw err;
  }
}

/** The state of each of `ys` at the mint, asked CHECK_BATCH at a time. */
async function checkInBatches(
  gateway: CashuMintGateway,
  mint: string,
  ys: readonly string[],
): Promise<ProofState[]> {
  const states: ProofState[] = [];
  const batches = Math.ceil(ys.length / CHECK_BATCH);
  for (let b = 0; b < batches; b++) {
    const batch = ys.slice(b * CHECK_BATCH, (b + 1) * CHECK_BATCH);
    try {
      states.push(...(await gateway.checkState(mint, batch)));
    } catch (err) {
      const which = batches > 1 ? `, request ${b + 1} of ${batches}` : '';
      throw new Error(`${(err as Error).message}${which}`, { cause: err });
    }
  }
  return states;
}
