/**
 * The wallet store on SQLite (`node:sqlite`, built into Node 24): where the
 * operator's money lives. Write-ahead logging; every multi-row change is
 * one transaction, and a power cut loses whole transactions at the log's
 * end, never part of one. A write survives a kill -9 once it returned,
 * and a power cut once it is synced: a swap's record by {@link
 * SqliteWalletStore.durable} before the swap leaves, an export before its
 * token is printed, a refund as it commits; what a power cut may lose
 * without losing money is not waited for (docs/wallet.md).
 */
import { closeSync, fsync, openSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { StoreFailedError, TokenReplayedError } from '../core/errors.ts';
import type {
  Balance,
  OwedTerms,
  RedemptionRecord,
  WalletStore,
  WireProof,
} from '../core/ports.ts';
import { computeY } from '../core/token.ts';
import { makeDataDir } from './data-dir.ts';
import { lockDataDir, type DataDirLock } from './data-dir-lock.ts';
import { StartupError, systemCode } from '../startup-error.ts';
import { makeOwnerOnly } from './owner-only.ts';
import { unsafeToOpen } from './restore-marker.ts';
import { isDamaged, isFailedSync, RESTORE_ADVICE } from './sqlite-errors.ts';
import { dropUncommitted } from './wal-index.ts';

/**
 * Connections and data directory locks of stores whose sync failed, kept
 * from the garbage collector, which would close them (see {@link
 * SqliteWalletStore.close}).
 */
const LEFT_OPEN: unknown[] = [];

/** How long a write waits for another connection's, in ms. */
const BUSY_TIMEOUT_MS = 5000;

/**
 * Indexes added within a layout: made at every open if missing, so an
 * older Paygress of the same layout still opens the store (it ignores
 * them). The balance every metrics scrape reads counts the unspent proofs
 * alone, not every proof ever stored (exported ones are kept).
 */
const LATER_INDEXES = `
CREATE INDEX IF NOT EXISTS proofs_unspent_amounts ON proofs (mint, unit, amount)
  WHERE state = 'unspent';
`;

/** The store's layout, as `PRAGMA user_version`; see `#migrate`. */
export const SCHEMA_VERSION = 4;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS redemptions (
  id TEXT PRIMARY KEY,
  mint TEXT NOT NULL,
  unit TEXT NOT NULL,
  amount INTEGER NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('pending', 'complete', 'released')),
  delivered INTEGER NOT NULL DEFAULT 0,
  -- The grant the payment bought (layout 4), recorded before its pod is
  -- made and when its answer is lost: a retry of the payment, owed to
  -- its payer, buys that grant again, after a restart too.
  grant_id TEXT,
  -- Refunded because its grant's pod could not be made (layout 4): when
  -- that grant would have expired. Until then a pod a late create made
  -- for it is deleted, after a restart too.
  refunded_until INTEGER,
  -- Empty since layout 3 (the swaps table): in a store from before, the
  -- record of redemptions completed then (docs/wallet.md).
  swap TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  settled_at INTEGER
);
CREATE INDEX IF NOT EXISTS redemptions_pending
  ON redemptions (state) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS redemptions_owed
  ON redemptions (id) WHERE state = 'complete' AND delivered = 0;
CREATE INDEX IF NOT EXISTS redemptions_released
  ON redemptions (settled_at) WHERE state = 'released';
CREATE INDEX IF NOT EXISTS redemptions_refunded
  ON redemptions (refunded_until) WHERE refunded_until IS NOT NULL;
-- A swap's record (its inputs, the outputs' secrets and blinding factors)
-- while it is unfinished or released, which settling restores from. Its
-- own table, deleted when the swap completes: a record of 2 KB or more
-- fills a page of its own, and emptied in place within the redemption's
-- row that page was never used again.
CREATE TABLE IF NOT EXISTS swaps (
  redemption_id TEXT PRIMARY KEY REFERENCES redemptions (id),
  swap TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS redeemed_ys (
  y TEXT PRIMARY KEY,
  redemption_id TEXT NOT NULL REFERENCES redemptions (id)
);
CREATE INDEX IF NOT EXISTS redeemed_ys_redemption
  ON redeemed_ys (redemption_id);
CREATE TABLE IF NOT EXISTS proofs (
  y TEXT PRIMARY KEY,
  redemption_id TEXT NOT NULL REFERENCES redemptions (id),
  mint TEXT NOT NULL,
  unit TEXT NOT NULL,
  keyset_id TEXT NOT NULL,
  amount INTEGER NOT NULL,
  secret TEXT NOT NULL,
  c TEXT NOT NULL,
  dleq TEXT,
  state TEXT NOT NULL CHECK (state IN ('unspent', 'exported', 'refunded', 'spent')),
  changed_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS proofs_unspent ON proofs (mint, unit, state);
CREATE INDEX IF NOT EXISTS proofs_redemption ON proofs (redemption_id);
CREATE TABLE IF NOT EXISTS released_inputs (
  y TEXT NOT NULL,
  redemption_id TEXT NOT NULL REFERENCES redemptions (id)
);
CREATE INDEX IF NOT EXISTS released_inputs_y ON released_inputs (y);
CREATE INDEX IF NOT EXISTS released_inputs_redemption
  ON released_inputs (redemption_id);
CREATE TABLE IF NOT EXISTS used_grants (
  id TEXT PRIMARY KEY,
  used_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS exports (
  id INTEGER PRIMARY KEY,
  token TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  printed_at INTEGER
);
`;

/**
 * A redemption record's columns, its swap's record joined. Each query
 * on it finds its redemptions through an index (of those pending, of
 * those released by when, or by id): `redemptions` holds every payment.
 */
const RECORD = `r.id, r.mint, r.unit, r.amount, s.swap, r.created_at
  FROM redemptions r JOIN swaps s ON s.redemption_id = r.id`;

/** A released redemption's inputs, by its id. */
const RELEASED_INPUTS = 'SELECT y FROM released_inputs WHERE redemption_id = ?';

/** Options of {@link SqliteWalletStore}. */
export interface SqliteWalletStoreOptions {
  /**
   * Directory holding `wallet.sqlite`; created (0700) when missing. The
   * store's files in it are made 0600 at every open.
   */
  readonly dataDir: string;
  /** Clock for timestamps, ms since epoch. Default `Date.now`. */
  readonly now?: () => number;
  /**
   * Whether this process serves requests from the store: it then holds
   * the data directory's lock (data-dir-lock.ts) while the store is open,
   * and fails to open while another process holds it. Default false, for
   * commands that only read or export.
   */
  readonly serving?: boolean;
  /**
   * Called once, with the error, when a sync fails and the store stops
   * taking writes (see {@link SqliteWalletStore.failed}).
   */
  readonly onFailedSync?: (err: unknown) => void;
  /**
   * Called when a store whose sync failed closes and cannot cut the
   * commit that failed off its log, with the reason: the next open may
   * then keep that commit, whose caller was told it failed.
   */
  readonly onFailedCut?: (reason: string) => void;
  /**
   * Called as each sync of {@link SqliteWalletStore.durable} ends, with
   * its duration in ms, failed or not: how long payments waited for the
   * disk.
   */
  readonly onSynced?: (ms: number) => void;
}

/** A stored proof with its bookkeeping. */
export interface StoredProof extends WireProof {
  readonly y: string;
  readonly mint: string;
  readonly unit: string;
  readonly state: 'unspent' | 'exported' | 'refunded' | 'spent';
}

/** The wallet store's file in the data directory. */
export const WALLET_FILE = 'wallet.sqlite';

export class SqliteWalletStore implements WalletStore {
  readonly #db: DatabaseSync;
  readonly #lock: DataDirLock | undefined;
  readonly #now: () => number;
  // Redemptions owed to their payer are rare; knowing there are none keeps
  // the refusal of an ordinary replay off the database.
  #owed: number;
  // Completed redemptions whose request is being answered now, with their
  // inputs' Ys: not yet recorded as delivered (a crash leaves them owed),
  // and not to be handed to a second request meanwhile. The Ys let a
  // replay of anything else be refused without asking the database.
  readonly #delivering = new Map<string, readonly string[]>();
  readonly #deliveringYs = new Set<string>();
  // Every statement, compiled once: the store's SQL is a fixed set, and
  // compiling it again took a quarter of a millisecond per redemption.
  readonly #statements = new Map<string, StatementSync>();
  // The write-ahead log {@link durable} syncs, held open: the file SQLite
  // writes, whatever becomes of its name. Undefined when SQLite could not
  // use one on this file system, and every commit is synced instead.
  readonly #wal: { readonly path: string; readonly fd: number } | undefined;
  #walNamed = false;
  // One sync at a time, each begun after its callers' writes.
  #syncing: Promise<unknown> = Promise.resolve();
  // The sync queued behind the running one and not begun yet: a caller
  // arriving now shares it, since it begins after that caller's writes.
  #next: Promise<void> | undefined;
  // A sync failed, ours or SQLite's: see #refuseAfterFailure.
  #failed = false;
  // After a failed sync: SQLite's write lock is held (#holdWriteLock).
  #writeLocked = false;
  #closed = false;
  readonly #onFailedSync: ((err: unknown) => void) | undefined;
  readonly #onFailedCut: ((reason: string) => void) | undefined;
  readonly #onSynced: ((ms: number) => void) | undefined;
  // When the sync of the log under way began (performance.now()).
  #syncStarted: number | undefined;

  constructor(options: SqliteWalletStoreOptions) {
    makeDataDir(options.dataDir);
    const file = join(options.dataDir, WALLET_FILE);
    // A restore holds the data directory's lock while it moves the store:
    // looked at once the lock is held (and by the commands, under theirs),
    // and before anything creates the file, which would make an empty
    // store.
    this.#lock = options.serving ? lockDataDir(options.dataDir) : undefined;
    const unsafe = unsafeToOpen(options.dataDir, file);
    if (unsafe !== undefined) {
      this.#lock?.release();
      throw new StartupError(unsafe);
    }
    let db: DatabaseSync | undefined;
    try {
      // 0600 whatever the directory's mode or the umask: it is bearer money.
      makeOwnerOnly(file);
      this.#db = db = new DatabaseSync(file);
      // Before anything is written, journal mode included.
      this.#refuseUnknownLayout(file);
      db.exec(
        `PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS};`,
      );
      this.#migrate();
      const { journal_mode: mode } = this.#prepare(
        'PRAGMA journal_mode',
      ).get() as { journal_mode: string };
      // The log beside the file SQLite opened, symbolic links followed.
      const main = this.#prepare('PRAGMA database_list').all() as {
        name: string;
        file: string;
      }[];
      const opened = main.find((d) => d.name === 'main')?.file;
      this.#owed = (
        this.#prepare(
          "SELECT COUNT(*) AS n FROM redemptions WHERE state = 'complete' AND delivered = 0",
        ).get() as { n: number }
      ).n;
      // Last: nothing after it can fail and leave the descriptor open.
      this.#wal =
        mode === 'wal' && opened ? openLog(`${opened}-wal`) : undefined;
    } catch (err) {
      db?.close();
      this.#lock?.release();
      throw namingFile(file, err);
    }
    this.#now = options.now ?? Date.now;
    this.#onFailedSync = options.onFailedSync;
    this.#onFailedCut = options.onFailedCut;
    this.#onSynced = options.onSynced;
  }

  /**
   * Refuses a store written by a newer Paygress, whose changes this code
   * would not know to keep, or one whose version no Paygress writes.
   */
  #refuseUnknownLayout(file: string): void {
    const version = this.#version();
    if (version > SCHEMA_VERSION) {
      throw new Error(
        `${file} was written by a newer Paygress (store schema ${version}; this one knows ${SCHEMA_VERSION}): run that version or a later one`,
      );
    }
    if (version < 0) {
      throw new Error(
        `${file} has store schema ${version}, which no Paygress writes: is it a Paygress wallet store?`,
      );
    }
    // A new store has no tables; any store Paygress wrote has this one.
    const tables = this.#prepare(
      "SELECT name FROM sqlite_schema WHERE type = 'table'",
    ).all() as { name: string }[];
    if (
      !tables.some((t) => t.name === 'redemptions') &&
      (version > 0 || tables.length > 0)
    ) {
      throw new Error(
        `${file} is an SQLite database but not a Paygress wallet store: move it away, or set dataDir to another directory`,
      );
    }
  }

  /** Brings the store to {@link SCHEMA_VERSION}, in one transaction. */
  #migrate(): void {
    if (this.#version() === SCHEMA_VERSION) {
      this.#db.exec(LATER_INDEXES);
      return;
    }

    this.#db.exec('BEGIN IMMEDIATE');
    try {
      // Version 0 is any store written before versions were recorded. The
      // first of those lack `delivered`: every redemption they completed
      // counts as delivered, so none of their tokens is let through again.
      const columns = this.#columns('redemptions');
      if (columns.length > 0 && !columns.includes('delivered')) {
        this.#db.exec(
          `ALTER TABLE redemptions ADD COLUMN delivered INTEGER NOT NULL DEFAULT 0;
           UPDATE redemptions SET delivered = 1 WHERE state = 'complete';`,
        );
      }
      // Layout 4 added what a restart must not forget of a lost answer's
      // grant and of a refunded grant's pod.
      for (const [column, type] of [
        ['grant_id', 'TEXT'],
        ['refunded_until', 'INTEGER'],
      ] as const) {
        if (columns.length > 0 && !columns.includes(column)) {
          this.#db.exec(`ALTER TABLE redemptions ADD COLUMN ${column} ${type}`);
        }
      }
      this.#db.exec(SCHEMA);
      this.#db.exec(LATER_INDEXES);
      // Up to layout 2 a swap's record was in its redemption's row: those
      // settling may still need are copied; the rest stay (docs/wallet.md).
      this.#db.exec(
        `INSERT OR IGNORE INTO swaps (redemption_id, swap)
         SELECT id, swap FROM redemptions WHERE state <> 'complete'`,
      );
      this.#db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
      this.#db.exec('COMMIT');
    } catch (err) {
      this.#rollback();
      throw err;
    }
  }

  /**
   * Ends the failed transaction, unless SQLite already did (it rolls back
   * on a full disk or an I/O error): a ROLLBACK then fails, and its error
   * would hide the one that says what happened.
   */
  #rollback(): void {
    if (this.#db.isTransaction) this.#db.exec('ROLLBACK');
  }

  #version(): number {
    const row = this.#prepare('PRAGMA user_version').get() as {
      user_version: number;
    };
    return row.user_version;
  }

  #prepare(sql: string): StatementSync {
    let statement = this.#statements.get(sql);
    if (statement === undefined) {
      statement = this.#db.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement;
  }

  #columns(table: string): string[] {
    const rows = this.#prepare('SELECT name FROM pragma_table_info(?)').all(
      table,
    ) as { name: string }[];
    return rows.map((row) => row.name);
  }

  findRedeemed(
    ys: readonly string[],
  ): { y: string; pending: boolean } | undefined {
    const select = this.#prepare(
      `SELECT r.state FROM redeemed_ys y JOIN redemptions r ON r.id = y.redemption_id
       WHERE y.y = ?`,
    );
    for (const y of ys) {
      const row = select.get(y) as { state: string } | undefined;
      if (row !== undefined) return { y, pending: row.state === 'pending' };
    }
    return undefined;
  }

  begin(record: RedemptionRecord): void {
    // On disk once durable() resolves, before the swap leaves: the event
    // loop does not wait for the disk meanwhile.
    this.#unsynced(() => {
      this.#prepare(
        `INSERT INTO redemptions (id, mint, unit, amount, state, swap, created_at)
           VALUES (?, ?, ?, ?, 'pending', '', ?)`,
      ).run(
        record.id,
        record.mint,
        record.unit,
        record.amount,
        record.createdAt,
      );
      this.#prepare(
        'INSERT INTO swaps (redemption_id, swap) VALUES (?, ?)',
      ).run(record.id, record.swap.serialized);
      const claim = this.#prepare(
        'INSERT INTO redeemed_ys (y, redemption_id) VALUES (?, ?)',
      );
      for (const y of record.ys) {
        try {
          claim.run(y, record.id);
        } catch (err) {
          if (isConstraint(err)) {
            throw new TokenReplayedError('token was already redeemed');
          }
          throw err;
        }
      }
    });
  }

  complete(id: string, proofs: readonly WireProof[], inRequest: boolean): void {
    // Not waited for on disk: if a power cut loses this, the swap's record,
    // durable since before the swap left, is still pending at the next
    // start, and settling restores these proofs from the mint.
    this.#unsynced(() => {
      const row = this.#redemption(id);
      if (row.state === 'released') this.#reclaim(id);
      else if (row.state !== 'pending') {
        throw new StoreFailedError(`redemption ${id} is already ${row.state}`);
      }
      const insert = this.#prepare(
        `INSERT INTO proofs (y, redemption_id, mint, unit, keyset_id, amount, secret, c, dleq, state, changed_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'unspent', ?)`,
      );
      const now = this.#now();
      for (const p of proofs) {
        insert.run(
          computeY(p.secret),
          id,
          row.mint,
          row.unit,
          p.id,
          p.amount,
          p.secret,
          p.C,
          p.dleq ? JSON.stringify(p.dleq) : null,
          now,
        );
      }
      this.#settle(id, 'complete');
    });
    if (inRequest) this.#startDelivering(id);
    else this.#owed++;
  }

  /** `id` is being delivered; its Ys, unless given, from the database. */
  #startDelivering(id: string, ys?: readonly string[]): void {
    const inputs =
      ys ??
      (
        this.#prepare('SELECT y FROM redeemed_ys WHERE redemption_id = ?').all(
          id,
        ) as { y: string }[]
      ).map((row) => row.y);
    this.#delivering.set(id, inputs);
    for (const y of inputs) this.#deliveringYs.add(y);
  }

  /** `id` is no longer being delivered; false if it was not. */
  #stopDelivering(id: string): boolean {
    const ys = this.#delivering.get(id);
    if (ys === undefined) return false;
    this.#delivering.delete(id);
    for (const y of ys) this.#deliveringYs.delete(y);
    return true;
  }

  deliver(
    ys: readonly string[],
    want: OwedTerms,
  ):
    | { id: string; mint: string; unit: string; amount: number; grant?: string }
    | 'delivering'
    | undefined {
    if (ys.length === 0) return undefined;
    // Nothing owed and none of these being delivered: the common replay.
    if (this.#owed === 0 && !ys.some((y) => this.#deliveringYs.has(y))) {
      return undefined;
    }
    const owner = this.#prepare(
      'SELECT redemption_id FROM redeemed_ys WHERE y = ?',
    );
    const ids = new Set(
      ys.map(
        (y) =>
          (owner.get(y) as { redemption_id: string } | undefined)
            ?.redemption_id,
      ),
    );
    const [id] = ids;
    if (ids.size !== 1 || id === undefined) return undefined;

    const row = this.#prepare(
      `SELECT r.mint, r.unit, r.grant_id, (SELECT COUNT(*) FROM redeemed_ys WHERE redemption_id = r.id) AS inputs,
           (SELECT COALESCE(SUM(amount), 0) FROM proofs WHERE redemption_id = r.id) AS amount
         FROM redemptions r WHERE r.id = ? AND r.state = 'complete' AND r.delivered = 0`,
    ).get(id) as
      | {
          mint: string;
          unit: string;
          grant_id: string | null;
          inputs: number;
          amount: number;
        }
      | undefined;
    // Only the very token that paid (the same proofs, all of them), and
    // judged by what it paid: a retry names its own amounts, mint and unit,
    // and only the secrets tie it to the payment.
    if (
      row === undefined ||
      row.inputs !== ys.length ||
      row.mint !== want.mint ||
      row.unit !== want.unit ||
      row.amount < want.minimum
    ) {
      return undefined;
    }
    // Another request is answering with it right now: whether it is owed
    // after is not known yet.
    if (this.#delivering.has(id)) return 'delivering';

    this.#startDelivering(id, ys);
    this.#owed--;
    const owed = { id, mint: row.mint, unit: row.unit, amount: row.amount };
    return row.grant_id === null ? owed : { ...owed, grant: row.grant_id };
  }

  buying(id: string, grant: string): void {
    // Not waited for on disk: a crash that loses it leaves the retry free
    // to buy what it presents, as before this was kept.
    this.#unsynced(() =>
      this.#prepare('UPDATE redemptions SET grant_id = ? WHERE id = ?').run(
        grant,
        id,
      ),
    );
  }

  delivered(id: string): void {
    const ys = this.#delivering.get(id);
    if (ys === undefined) return;
    this.#stopDelivering(id);
    // Not waited for on disk: if a crash loses this mark, the payer's
    // token buys its request once more, and nothing is lost.
    try {
      this.#unsynced(() => this.#markDelivered(id));
    } catch (err) {
      this.#startDelivering(id, ys);
      throw err;
    }
  }

  durable(): Promise<void> {
    // Payments whose records were written while a sync ran share the next
    // one (group commit): one sync each would queue them one sync apart.
    if (this.#next !== undefined) return this.#next;
    const run = this.#syncing.then(() => {
      this.#next = undefined;
      return this.#sync();
    });
    this.#next = run;
    this.#syncing = run.catch(() => undefined);
    return run;
  }

  /**
   * Resolves once every sync asked for so far has ended, however: for a
   * close that must know whether one failed before it closes.
   */
  settled(): Promise<void> {
    return this.#syncing.then(() => undefined);
  }

  async #sync(): Promise<void> {
    if (this.#closed) throw new StoreFailedError('the wallet store is closed');
    this.#refuseAfterFailure();
    // Without a write-ahead log every commit was synced as it was made.
    if (this.#wal === undefined) return;
    const started = (this.#syncStarted = performance.now());
    try {
      await syncDescriptor(this.#wal.fd);
    } catch (err) {
      this.#latch(err);
      throw new StoreFailedError(
        'the wallet store could not put its records on disk',
        { cause: err },
      );
    } finally {
      this.#syncStarted = undefined;
      try {
        this.#onSynced?.(performance.now() - started);
      } catch {
        // Counting it must not change what the sync's callers are told.
      }
    }
    if (!this.#walNamed) {
      // The log's name in its directory, once; as SQLite does, a file
      // system that cannot sync a directory is not held against it.
      await syncDirectory(dirname(this.#wal.path));
      this.#walNamed = true;
    }
  }

  /**
   * How long the sync of the log under way has run, in ms; 0 when none
   * runs. A disk that stops answering shows here: payments wait for it.
   */
  syncRunningMs(now = performance.now()): number {
    return this.#syncStarted === undefined ? 0 : now - this.#syncStarted;
  }

  /**
   * The first thing SQLite's quick check finds wrong with the store, or
   * undefined when it is whole. It reads every page: 0.5 s for a store
   * of 240 MB (100,000 payments) here.
   */
  damage(): string | undefined {
    const { quick_check: found } = this.#prepare(
      'PRAGMA quick_check(1)',
    ).get() as { quick_check: string };
    return found === 'ok' ? undefined : found;
  }

  /** True once a sync failed: the store takes no more writes. */
  get failed(): boolean {
    return this.#failed;
  }

  /**
   * After a failed sync, Linux has dropped the writes it could not make
   * and says so once: a later sync succeeds without them, and SQLite,
   * reopening the log, stops at the gap they leave and drops every commit
   * after it. Nothing written from then on is kept, so nothing is written
   * until a restart reopens the store from what is on disk.
   */
  #latch(err: unknown): void {
    if (this.#failed) return;
    this.#failed = true;
    // Once the failed transaction, if any, has been rolled back.
    queueMicrotask(() => this.#tryWriteLock());
    try {
      this.#onFailedSync?.(err);
    } catch {
      // Telling of it must not keep the store from refusing writes.
    }
  }

  #refuseAfterFailure(): void {
    if (this.#failed) {
      throw new StoreFailedError(
        'a sync of the wallet store failed: it takes no more writes until Paygress restarts',
      );
    }
  }

  abandon(id: string): void {
    if (this.#stopDelivering(id)) this.#owed++;
  }

  undeliver(id: string, grant?: string | null): void {
    const keep = grant === undefined;
    const changed = this.#transaction(() => {
      const result = this.#prepare(
        `UPDATE redemptions SET delivered = 0, grant_id = ${keep ? 'grant_id' : '?'},
             refunded_until = NULL
           WHERE id = ? AND state = 'complete' AND delivered = 1`,
      ).run(...(keep ? [id] : [grant, id]));
      if (result.changes !== 1) return false;
      this.#mark(
        this.#proofs("WHERE redemption_id = ? AND state = 'refunded'", id),
        'unspent',
      );
      return true;
    });
    if (changed) this.#owed++;
  }

  release(id: string, final = false): void {
    // Not waited for on disk: if a power cut loses this, the redemption is
    // pending again at the next start, and settling asks the mint.
    this.#unsynced(() => {
      const row = this.#prepare(
        'SELECT state FROM redemptions WHERE id = ?',
      ).get(id) as { state: string } | undefined;
      // Gone already: settled meanwhile as a swap that never ran.
      if (row === undefined || row.state === 'complete') return;
      if (final) {
        // The swap cannot run later, so nothing of it is worth a late
        // check at the mint: pending, or kept aside as released before.
        for (const table of ['redeemed_ys', 'released_inputs', 'swaps']) {
          this.#prepare(`DELETE FROM ${table} WHERE redemption_id = ?`).run(id);
        }
        this.#prepare('DELETE FROM redemptions WHERE id = ?').run(id);
        return;
      }
      if (row.state !== 'pending') return;
      // Kept aside: a swap that was still on its way to the mint may run
      // after all, and its outputs can then be recovered by these inputs.
      this.#prepare(
        'INSERT INTO released_inputs (y, redemption_id) SELECT y, redemption_id FROM redeemed_ys WHERE redemption_id = ?',
      ).run(id);
      this.#prepare('DELETE FROM redeemed_ys WHERE redemption_id = ?').run(id);
      this.#settle(id, 'released');
    });
  }

  unfinished(): RedemptionRecord[] {
    return this.#records(
      `SELECT ${RECORD} WHERE r.state = 'pending' ORDER BY r.created_at`,
      'SELECT y FROM redeemed_ys WHERE redemption_id = ?',
    );
  }

  released(ys: readonly string[], since = 0): RedemptionRecord[] {
    if (ys.length === 0) {
      return this.#records(
        `SELECT ${RECORD} WHERE r.state = 'released' AND r.settled_at >= ?
         ORDER BY r.created_at`,
        RELEASED_INPUTS,
        since,
      );
    }
    // Found by their inputs (indexed), not by reading every swap released
    // since the store began.
    const owners = this.#prepare(
      'SELECT DISTINCT redemption_id AS id FROM released_inputs WHERE y = ?',
    );
    const ids = new Set<string>();
    for (const y of ys) {
      for (const row of owners.all(y) as Array<{ id: string }>) ids.add(row.id);
    }
    if (ids.size === 0) return [];
    return this.#records(
      `SELECT ${RECORD} WHERE r.state = 'released' AND r.settled_at >= ?
         AND r.id IN (SELECT value FROM json_each(?)) ORDER BY r.created_at`,
      RELEASED_INPUTS,
      since,
      JSON.stringify([...ids]),
    );
  }

  releasedBefore(until: number, limit: number, skip = 0): RedemptionRecord[] {
    return this.#records(
      `SELECT ${RECORD} WHERE r.state = 'released' AND r.settled_at < ?
       ORDER BY r.settled_at, r.id LIMIT ? OFFSET ?`,
      RELEASED_INPUTS,
      until,
      limit,
      skip,
    );
  }

  #records(
    select: string,
    inputs: string,
    ...params: Array<number | string>
  ): RedemptionRecord[] {
    const rows = this.#prepare(select).all(...params) as Array<{
      id: string;
      mint: string;
      unit: string;
      amount: number;
      swap: string;
      created_at: number;
    }>;
    const ys = this.#prepare(inputs);
    return rows.map((row) => ({
      id: row.id,
      mint: row.mint,
      unit: row.unit,
      amount: row.amount,
      ys: (ys.all(row.id) as Array<{ y: string }>).map((r) => r.y),
      swap: { serialized: row.swap, outputAmount: 0 },
      createdAt: row.created_at,
    }));
  }

  refund(id: string, grantUntil?: number): WireProof[] {
    const proofs = this.#transaction(() => {
      const proofs = this.#proofs('WHERE redemption_id = ?', id);
      // All or nothing: if an export took some already, hand back none.
      if (proofs.some((p) => p.state !== 'unspent')) return [];
      this.#mark(proofs, 'refunded');
      // The refund is what the answer delivers.
      this.#markDelivered(id);
      if (grantUntil !== undefined) {
        this.#prepare(
          'UPDATE redemptions SET refunded_until = ? WHERE id = ?',
        ).run(grantUntil, id);
      }
      return proofs;
    });
    if (proofs.length > 0) this.#stopDelivering(id);
    return proofs;
  }

  refundedGrants(now: number): { id: string; until: number }[] {
    return (
      this.#prepare(
        `SELECT id, refunded_until FROM redemptions
           WHERE refunded_until > ? ORDER BY refunded_until`,
      ).all(now) as { id: string; refunded_until: number }[]
    ).map((r) => ({ id: r.id, until: r.refunded_until }));
  }

  useGrant(id: string): boolean {
    const result = this.#write(() =>
      this.#prepare(
        'INSERT OR IGNORE INTO used_grants (id, used_at) VALUES (?, ?)',
      ).run(id, this.#now()),
    );
    return result.changes === 1;
  }

  grantUsed(id: string): boolean {
    return (
      this.#prepare('SELECT 1 FROM used_grants WHERE id = ?').get(id) !==
      undefined
    );
  }

  /**
   * Payments redeemed whose answer never reached their payer, owed to
   * the same token's retry (not those being answered right now).
   */
  owedCount(): number {
    return this.#owed;
  }

  unuseGrant(id: string): void {
    this.#write(() =>
      this.#prepare('DELETE FROM used_grants WHERE id = ?').run(id),
    );
  }

  balances(): Balance[] {
    const rows = this.#prepare(
      `SELECT mint, unit,
           SUM(CASE WHEN kind = 'proof' THEN amount ELSE 0 END) AS available,
           SUM(CASE WHEN kind = 'pending' THEN amount ELSE 0 END) AS pending
         FROM (
           SELECT mint, unit, amount, 'proof' AS kind FROM proofs WHERE state = 'unspent'
           UNION ALL
           SELECT mint, unit, amount, 'pending' FROM redemptions WHERE state = 'pending'
         ) GROUP BY mint, unit ORDER BY mint, unit`,
    ).all() as Array<{
      mint: string;
      unit: string;
      available: number;
      pending: number;
    }>;
    return rows.map((r) => ({ ...r }));
  }

  /**
   * Value of unspent proofs not P2PK-locked to `pubkey`, per mint and
   * unit: `bearer`, not locked at all (stored before an operator's key was
   * set), and `otherKey`, locked to another key (one set before). Paygress
   * writes its locks as compact JSON, `"data":"<key>"`.
   */
  unlockedBalances(
    pubkey: string,
  ): { mint: string; unit: string; bearer: number; otherKey: number }[] {
    return (
      this.#prepare(
        `SELECT mint, unit,
             SUM(CASE WHEN secret LIKE '["P2PK",%' THEN 0 ELSE amount END) AS bearer,
             SUM(CASE WHEN secret LIKE '["P2PK",%' THEN amount ELSE 0 END) AS otherKey
           FROM proofs
           WHERE state = 'unspent'
             AND NOT (secret LIKE '["P2PK",%' AND instr(secret, ?) > 0)
           GROUP BY mint, unit ORDER BY mint, unit`,
      ).all(`"data":"${pubkey}"`) as {
        mint: string;
        unit: string;
        bearer: number;
        otherKey: number;
      }[]
    ).map((r) => ({ ...r }));
  }

  /** Unspent, unexported proofs of one mint and unit. */
  unspent(mint: string, unit: string): StoredProof[] {
    return this.#proofs(
      "WHERE mint = ? AND unit = ? AND state = 'unspent'",
      mint,
      unit,
    );
  }

  /**
   * Marks those of `ys` still unspent as spent (found spent at the mint).
   * Not waited for on disk: a power cut that loses the mark leaves them
   * unspent in the store, and the next export asks the mint again.
   */
  markSpent(ys: readonly string[]): void {
    this.#unsynced(() => this.#markUnspent(ys, 'spent'));
  }

  /**
   * Marks those of `ys` still unspent as exported and records the token
   * `encode` makes of them, in one transaction; undefined when none was
   * left (another export or a refund took them meanwhile). Resolves once
   * that is on disk, for the token to be printed after it; the token
   * stays in the store until {@link printedExport} says it was written:
   * an export that could not print it, or died first, leaves it for
   * {@link unprintedExports}.
   *
   * The commit does not wait for the disk, the sync comes after it: a
   * commit holds SQLite's write lock, and a serving Paygress's payments
   * wait for that lock on its event loop, every request with them (a
   * second per commit on a disk whose syncs take a second).
   */
  async exportProofs(
    ys: readonly string[],
    encode: (taken: ReadonlySet<string>) => string,
  ): Promise<{ id: number; token: string } | undefined> {
    const recorded = this.#unsynced(() => {
      const marked = this.#markUnspent(ys, 'exported');
      if (marked.size === 0) return undefined;
      const token = encode(marked);
      const { lastInsertRowid } = this.#prepare(
        'INSERT INTO exports (token, created_at) VALUES (?, ?)',
      ).run(token, this.#now());
      return { id: Number(lastInsertRowid), token };
    });
    if (recorded !== undefined) await this.durable();
    return recorded;
  }

  /** Those of `ys` still unspent, marked `state`: the `Y`s marked. */
  #markUnspent(ys: readonly string[], state: 'spent' | 'exported') {
    const update = this.#prepare(
      "UPDATE proofs SET state = ?, changed_at = ? WHERE y = ? AND state = 'unspent'",
    );
    const marked = new Set<string>();
    for (const y of ys) {
      if (update.run(state, this.#now(), y).changes === 1) marked.add(y);
    }
    return marked;
  }

  /** Exported tokens not yet known to be printed, oldest first. */
  unprintedExports(): { id: number; token: string }[] {
    return (
      this.#prepare(
        'SELECT id, token FROM exports WHERE printed_at IS NULL ORDER BY id',
      ).all() as { id: number; token: string }[]
    ).map((r) => ({ id: r.id, token: r.token }));
  }

  /**
   * Records that an exported token was written out in full; resolves once
   * that is on disk. Committed without waiting for the disk, as {@link
   * exportProofs} is.
   */
  async printedExport(id: number): Promise<void> {
    this.#unsynced(() =>
      this.#prepare('UPDATE exports SET printed_at = ? WHERE id = ?').run(
        this.#now(),
        id,
      ),
    );
    await this.durable();
  }

  close(): void {
    if (this.#closed) return;
    if (this.#failed) {
      // Closing the last connection, SQLite would copy the log into the
      // database, pages the failed sync lost included, and delete it.
      // Left open, it is dropped with the process (process.exit, which
      // closes no connection), and the next start recovers the log up to
      // the first page it cannot trust, after a commit SQLite failed to
      // sync within it (synchronous = FULL: a refund, a grant's use) is
      // cut off it (wal-index.ts); one committed unsynced stays, as its
      // callers, refused by durable(), were told. The data directory stays
      // locked until then: another Paygress opening the store meanwhile
      // would trust this one's index instead of recovering the log.
      const left = this.#cutFailedCommit();
      LEFT_OPEN.push(this.#db, this.#lock);
      if (left !== undefined) {
        try {
          this.#onFailedCut?.(left);
        } catch {
          // Telling of it must not keep the store from closing.
        }
      }
    } else {
      if (this.#db.isOpen) this.#db.close();
      this.#lock?.release();
    }
    if (this.#wal !== undefined) {
      // After the sync running now, if any: its descriptor's number must
      // not be given to another file while it is in use.
      const { fd } = this.#wal;
      this.#syncing = this.#syncing.then(() => {
        try {
          closeSync(fd);
        } catch {
          // Nothing is written through it: a failed close loses nothing.
        }
      });
    }
    this.#closed = true;
  }

  /**
   * After a failed sync, SQLite's write lock, never released: no other
   * connection (a `paygress wallet` command, which takes no data
   * directory lock) commits, or checkpoints the log into the database as
   * a commit past 1,000 pages does, while this process shuts down; a
   * commit of theirs under way finishes first. False when it cannot be
   * had (another connection kept it past the busy timeout).
   */
  #holdWriteLock(): boolean {
    if (this.#writeLocked) return true;
    if (!this.#db.isOpen || this.#db.isTransaction) return false;
    try {
      this.#db.exec('BEGIN IMMEDIATE');
      this.#writeLocked = true;
    } catch {
      // Tried again at close.
    }
    return this.#writeLocked;
  }

  /**
   * As #holdWriteLock, without waiting on the event loop for another
   * connection's commit: tried again every 20 ms until it is held or the
   * store closes (which waits for it).
   */
  #tryWriteLock(): void {
    if (this.#writeLocked || this.#closed || !this.#db.isOpen) return;
    this.#db.exec('PRAGMA busy_timeout = 0');
    try {
      if (this.#holdWriteLock()) return;
    } finally {
      this.#db.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
    }
    setTimeout(() => this.#tryWriteLock(), 20).unref();
  }

  /**
   * Cuts a commit whose sync failed off the log (wal-index.ts), holding
   * the write lock, so that no commit of another connection is cut or
   * follows the cut. Without the lock nothing is cut. Undefined once the
   * log ends at its last commit; otherwise why it was left as it is.
   */
  #cutFailedCommit(): string | undefined {
    if (this.#wal === undefined) return undefined;
    const { path } = this.#wal;
    if (!this.#holdWriteLock()) {
      if (!this.#db.isOpen) return 'its connection was closed';
      if (this.#db.isTransaction) return 'a transaction was still open';
      return `another connection kept SQLite's write lock past ${BUSY_TIMEOUT_MS / 1000} s`;
    }
    return dropUncommitted(path, `${path.slice(0, -'-wal'.length)}-shm`);
  }

  #markDelivered(id: string): void {
    this.#prepare('UPDATE redemptions SET delivered = 1 WHERE id = ?').run(id);
  }

  #proofs(where: string, ...params: string[]): StoredProof[] {
    const rows = this.#prepare(
      `SELECT y, mint, unit, keyset_id, amount, secret, c, dleq, state FROM proofs ${where} ORDER BY amount DESC`,
    ).all(...params) as Array<{
      y: string;
      mint: string;
      unit: string;
      keyset_id: string;
      amount: number;
      secret: string;
      c: string;
      dleq: string | null;
      state: StoredProof['state'];
    }>;
    return rows.map((r) => ({
      y: r.y,
      mint: r.mint,
      unit: r.unit,
      id: r.keyset_id,
      amount: r.amount,
      secret: r.secret,
      C: r.c,
      state: r.state,
      ...(r.dleq ? { dleq: JSON.parse(r.dleq) } : {}),
    }));
  }

  #mark(proofs: readonly StoredProof[], state: StoredProof['state']): void {
    const update = this.#prepare(
      'UPDATE proofs SET state = ?, changed_at = ? WHERE y = ?',
    );
    for (const p of proofs) update.run(state, this.#now(), p.y);
  }

  #redemption(id: string): { mint: string; unit: string; state: string } {
    const row = this.#prepare(
      'SELECT mint, unit, state FROM redemptions WHERE id = ?',
    ).get(id) as { mint: string; unit: string; state: string } | undefined;
    if (row === undefined) {
      throw new StoreFailedError(`no redemption ${id} in the store`);
    }
    return row;
  }

  /** A released redemption turned out to have run: its inputs are ours. */
  #reclaim(id: string): void {
    const claim = this.#prepare(
      'INSERT INTO redeemed_ys (y, redemption_id) VALUES (?, ?)',
    );
    const ys = this.#prepare(RELEASED_INPUTS).all(id) as Array<{
      y: string;
    }>;
    for (const { y } of ys) claim.run(y, id);
    this.#prepare('DELETE FROM released_inputs WHERE redemption_id = ?').run(
      id,
    );
  }

  #settle(id: string, state: 'complete' | 'released'): void {
    this.#prepare(
      'UPDATE redemptions SET state = ?, settled_at = ? WHERE id = ?',
    ).run(state, this.#now(), id);
    // A released swap keeps its record: the mint may still run it.
    if (state === 'complete') {
      this.#prepare('DELETE FROM swaps WHERE redemption_id = ?').run(id);
    }
  }

  /**
   * A transaction whose commit does not wait for the disk (WAL with
   * `synchronous = NORMAL`): a power cut may lose it whole, never tear it,
   * and the next synced commit or {@link durable} puts it on disk with
   * everything before it.
   */
  #unsynced<T>(work: () => T): T {
    // Not even the pragma: after a failure the write lock's transaction is
    // open, in which the safety level cannot change.
    this.#refuseAfterFailure();
    if (this.#wal === undefined) return this.#transaction(work);
    this.#db.exec('PRAGMA synchronous = NORMAL');
    try {
      return this.#transaction(work);
    } finally {
      this.#db.exec('PRAGMA synchronous = FULL');
    }
  }

  /** One statement committed on its own: refused, or latching, as below. */
  #write<T>(statement: () => T): T {
    this.#refuseAfterFailure();
    try {
      return statement();
    } catch (err) {
      if (isFailedSync(err)) this.#latch(err);
      // Another connection's lock past the busy timeout, a full disk: a
      // store that cannot record, as in #transaction.
      throw new StoreFailedError(
        'the wallet store could not record the change',
        { cause: err },
      );
    }
  }

  #transaction<T>(work: () => T): T {
    this.#refuseAfterFailure();
    try {
      // In the try: another connection keeping the write lock past the
      // busy timeout is a store that cannot record, not a bug.
      this.#db.exec('BEGIN IMMEDIATE');
      const result = work();
      this.#db.exec('COMMIT');
      return result;
    } catch (err) {
      if (isFailedSync(err)) this.#latch(err);
      this.#rollback();
      if (
        err instanceof TokenReplayedError ||
        err instanceof StoreFailedError
      ) {
        throw err;
      }
      throw new StoreFailedError(
        'the wallet store could not record the change',
        {
          cause: err,
        },
      );
    }
  }
}

/** The log, opened to be synced; undefined where it cannot be opened. */
function openLog(path: string): { path: string; fd: number } | undefined {
  try {
    return { path, fd: openSync(path, 'r') };
  } catch {
    return undefined;
  }
}

/** fsync, as SQLite syncs its log, in the thread pool. */
function syncDescriptor(fd: number): Promise<void> {
  return new Promise((resolve, reject) =>
    fsync(fd, (err) => (err ? reject(err) : resolve())),
  );
}

/** fsync of a directory; failures ignored, as SQLite ignores them. */
async function syncDirectory(path: string): Promise<void> {
  const handle = await open(path, 'r').catch(() => undefined);
  await handle?.sync().catch(() => undefined);
  await handle?.close().catch(() => undefined);
}

/** A start-up failure of the store, with the file it concerns named. */
function namingFile(file: string, err: unknown): Error {
  const message = String((err as Error)?.message ?? err);
  if (isDamaged(err)) {
    return new StartupError(
      `${file}: is not a Paygress wallet store, or is damaged (${message}): ${RESTORE_ADVICE}; never delete it, it may hold money`,
      { cause: err },
    );
  }
  if (message.includes(file)) return err as Error;
  // SQLite's or the system's: a file to fix, not a bug to trace.
  const fileFault =
    systemCode(err) !== undefined ||
    (err as { code?: unknown } | undefined)?.code === 'ERR_SQLITE_ERROR';
  const Kind = fileFault ? StartupError : Error;
  return new Kind(`${file}: ${message}`, { cause: err });
}

function isConstraint(err: unknown): boolean {
  return /constraint/i.test(String((err as Error)?.message ?? err));
}
