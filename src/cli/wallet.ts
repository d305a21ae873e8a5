/**
 * `paygress wallet balance` and `paygress wallet export`: how much money
 * the store holds, and taking it out as Cashu tokens.
 *
 * Export first asks each mint which stored proofs are still unspent
 * (NUT-07), marks the spent ones, then writes one `cashuB` token per mint
 * and unit and marks its proofs exported in the same transaction: a
 * repeated export never hands out a proof twice, and an export that could
 * not be written marks nothing.
 */
import { writeSync } from 'node:fs';
import { ConfigError, loadConfig } from '../config.ts';
import { encodeToken } from '../core/token.ts';
import { CashuMintGateway } from '../mint/cashu-gateway.ts';
import { SqliteWalletStore } from '../store/sqlite-wallet-store.ts';

/** Runs `paygress wallet balance|export`; resolves with the exit code. */
export async function wallet(
  command: 'balance' | 'export',
  file: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
): Promise<number> {
  let dataDir: string;
  let mints: string[];
  let timeoutMs: number;
  try {
    const config = loadConfig({ ...(file ? { file } : {}), env });
    dataDir = config.dataDir;
    mints = config.mints.map((m) => m.url);
    timeoutMs = config.mint.timeoutMs;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${err.message}\n`);
    return 2;
  }

  let store: SqliteWalletStore;
  try {
    store = new SqliteWalletStore({ dataDir });
  } catch (err) {
    process.stderr.write(`paygress wallet: ${(err as Error).message}\n`);
    return 1;
  }
  try {
    if (command === 'balance') return balance(store);
    return await exportAll(store, mints, timeoutMs);
  } finally {
    store.close();
  }
}

function balance(store: SqliteWalletStore): number {
  const rows = store.balances();
  if (rows.length === 0) {
    process.stdout.write('the wallet is empty\n');
    return 0;
  }
  for (const row of rows) {
    process.stdout.write(
      `${row.mint}\t${row.available} ${row.unit} available\t${row.pending} ${row.unit} pending\n`,
    );
  }
  return 0;
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
  try {
    for (const { mint, unit } of store.balances()) {
      const proofs = store.unspent(mint, unit);
      if (proofs.length === 0) continue;

      let states;
      let known: Set<string>;
      try {
        known = new Set((await gateway.keysets(mint)).map((k) => k.id));
        states = await gateway.checkState(
          mint,
          proofs.map((p) => p.y),
        );
      } catch (err) {
        process.stderr.write(
          `${mint}: not exported, the mint could not be asked which proofs are unspent (${(err as Error).message})\n`,
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
        process.stderr.write(
          `${mint}: ${foreign.length} proofs of keysets the mint does not list were not exported\n`,
        );
      }
      store.markProofs(
        spent.map((p) => p.y),
        'spent',
        () => undefined,
      );
      if (unspent.length === 0) continue;

      store.markProofs(
        unspent.map((p) => p.y),
        'exported',
        (marked) => {
          // Only what this transaction took: Paygress may have refunded, or
          // another export taken, some of them since they were read.
          const taken = unspent.filter((p) => marked.has(p.y));
          if (taken.length === 0) return;
          const token = encodeToken(mint, unit, taken);
          const total = taken.reduce((sum, p) => sum + p.amount, 0);
          // Written synchronously inside the transaction: if stdout fails,
          // the proofs stay unexported.
          writeSync(1, `${token}\n`);
          exported++;
          writeSync(
            2,
            `${mint}: exported ${total} ${unit} in ${taken.length} proofs\n`,
          );
        },
      );
    }
  } finally {
    await gateway.close();
  }
  if (exported === 0 && !failed) process.stderr.write('nothing to export\n');
  return failed ? 1 : 0;
}
