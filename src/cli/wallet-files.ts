/**
 * `paygress wallet backup FILE` and `paygress wallet restore FILE`: a copy
 * of the wallet store taken while Paygress serves, and putting one back.
 *
 * A backup is SQLite's online backup (a consistent snapshot, the log
 * included), made owner-only, checked, turned into one self-contained
 * file and synced before it takes its name, which it never takes from an
 * existing file. A restore runs only while no Paygress serves from the
 * data directory and no export runs (it takes both locks). It checks a
 * copy of the backup, then moves the store it replaces, with its log and
 * the log's index, into a directory of its own beside it: that store may
 * hold payments taken since the backup, and a log left beside a restored
 * file would be applied to it by SQLite, a database damaged beyond use.
 */
import { once } from 'node:events';
import {
  closeSync,
  constants,
  createReadStream,
  createWriteStream,
  existsSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  realpathSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { backup, DatabaseSync } from 'node:sqlite';
import { ConfigError, loadConfig } from '../config.ts';
import { makeDataDir } from '../store/data-dir.ts';
import { lockDataDir, lockExport } from '../store/data-dir-lock.ts';
import { OWNER_ONLY } from '../store/owner-only.ts';
import {
  readRestoreMarker,
  RESTORE_MARKER,
  unsafeToOpen,
  type RestoreMarker,
} from '../store/restore-marker.ts';
import { readTokenHeader } from '../core/token.ts';
import { SCHEMA_VERSION, WALLET_FILE } from '../store/sqlite-wallet-store.ts';
import { say, show } from './write-fully.ts';

/**
 * Connections to a serving store's file, never closed: closing the last
 * one would copy its log into the database, and that log may be one a
 * Paygress whose sync failed left for the next start to recover.
 */
const LEFT_OPEN: DatabaseSync[] = [];

/**
 * Runs `paygress wallet backup|restore FILE`; resolves with the exit
 * code, to leave with through `process.exit`.
 */
export async function walletFile(
  command: 'backup' | 'restore',
  file: string,
  configFile: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
): Promise<number> {
  let dataDir: string;
  try {
    dataDir = loadConfig({
      ...(configFile ? { file: configFile } : {}),
      env,
    }).dataDir;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    say(`${err.message}\n`);
    return 2;
  }
  try {
    return command === 'backup'
      ? await backupTo(dataDir, file)
      : await restoreFrom(dataDir, file);
  } catch (err) {
    say(`paygress wallet ${command}: ${(err as Error).message}\n`);
    return 1;
  }
}

async function backupTo(dataDir: string, target: string): Promise<number> {
  const store = join(dataDir, WALLET_FILE);
  if (resolve(target).startsWith(resolve(store))) {
    throw new Error(
      `${target} is a name the store itself uses: name a file elsewhere`,
    );
  }
  // Not beside a restore, which moves the store's files while it reads.
  const commands = lockExport(dataDir);
  try {
    const unsafe = unsafeToOpen(dataDir, store);
    if (unsafe !== undefined) throw new Error(unsafe);
    if (!existsSync(store)) {
      throw new Error(
        `no wallet store at ${store}; is dataDir (PAYGRESS_DATA_DIR) the one Paygress serves with?`,
      );
    }
    if (existsSync(target)) {
      throw new Error(
        `${target} exists: name a new file (a backup never replaces one)`,
      );
    }
    const partial = `${target}.partial`;
    createOwnerOnly(partial, `remove ${partial}, left by a backup cut short`);
    let held: string;
    try {
      const source = new DatabaseSync(store);
      LEFT_OPEN.push(source);
      // In one step, one read transaction: a backup made in steps starts
      // over whenever another connection commits between two of them,
      // and beside a Paygress taking payments it never ends (a store of
      // 10,000 pages, a commit every 10 ms: 46,000 steps in 20 s, none
      // the last). A reader holds up no writer in WAL mode.
      await backupRetried(source, partial);
      held = check(partial);
      syncFile(partial);
      giveName(partial, target);
    } catch (err) {
      removeStore(partial);
      throw new Error(
        `${target} could not be written (${(err as Error).message}); nothing was left behind`,
        { cause: err },
      );
    }
    syncFile(dirname(resolve(target)));
    return show(`${target}: the wallet store as it was now; ${held}\n`) ? 0 : 1;
  } finally {
    commands.release();
  }
}

/**
 * Gives the finished `partial` the name `target`, never taking it from an
 * existing file: a hard link fails on one, which a rename would replace.
 * Where the file system has no hard links, a rename after a last look.
 */
function giveName(partial: string, target: string): void {
  try {
    linkSync(partial, target);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') {
      throw err;
    }
    if (existsSync(target)) throw new Error(`${target} appeared meanwhile`);
    renameSync(partial, target);
    return;
  }
  rmSync(partial);
}

/**
 * SQLite's backup of `source` into `target`, tried again a few times when
 * it fails: a writer that holds the file locked (a store not yet in WAL
 * mode, or a checkpoint starting the log over) makes it fail at once.
 */
async function backupRetried(source: DatabaseSync, target: string) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await backup(source, target, { rate: 0x7fffffff });
    } catch (err) {
      if (attempt === BACKUP_ATTEMPTS) throw err;
      await sleep(200);
    }
  }
}

/** Tries of {@link backupRetried}, 200 ms apart. */
const BACKUP_ATTEMPTS = 10;

async function restoreFrom(dataDir: string, source: string): Promise<number> {
  if (!existsSync(source)) throw new Error(`${source} does not exist`);
  makeDataDir(dataDir);
  // The commands' lock first: a second restore is told another command
  // runs, not that a Paygress serves. Then nothing may open the store
  // while it is replaced.
  const commands = lockExport(dataDir);
  try {
    const serving = lockDataDir(dataDir);
    try {
      const finished = finishCutShort(dataDir);
      if (finished !== undefined) say(`${finished}\n`);
      return await replaceStore(dataDir, source);
    } finally {
      serving.release();
    }
  } finally {
    commands.release();
  }
}

/**
 * Finishes a restore cut short: the store it was replacing goes whole
 * into the directory its marker names, and the copy it was putting in
 * place is dropped (this restore makes its own). What it did, in words.
 */
function finishCutShort(dataDir: string): string | undefined {
  const marker = readRestoreMarker(dataDir);
  if (marker === undefined) return undefined;
  const store = join(dataDir, WALLET_FILE);
  const incoming = join(dataDir, INCOMING);
  let said = `a restore cut short was finished first`;
  // The copy still there: it was not put in place, so what is left of
  // the store beside it is the old one's.
  if (existsSync(incoming)) {
    const left = STORE_FILES.filter((s) => existsSync(store + s));
    if (left.length > 0) {
      mkdirSync(marker.aside, { recursive: true, mode: 0o700 });
      for (const suffix of left) {
        renameSync(store + suffix, join(marker.aside, WALLET_FILE + suffix));
      }
      syncFile(marker.aside);
      said += `: the store it was replacing is whole in ${marker.aside}`;
    }
    removeStore(incoming);
  }
  rmSync(join(dataDir, RESTORE_MARKER));
  syncFile(dataDir);
  return said;
}

async function replaceStore(dataDir: string, source: string): Promise<number> {
  const store = join(dataDir, WALLET_FILE);
  const incoming = join(dataDir, INCOMING);
  // A backup's own log sits beside the file it belongs to, links followed.
  const real = realpathSync(source);
  if (
    dirname(real) === realpathSync(dataDir) &&
    basename(real).startsWith(INCOMING)
  ) {
    throw new Error(
      `${source} is the copy a restore makes: restore from the backup itself; nothing was changed`,
    );
  }
  // Checked and made self-contained as a copy: the backup stays as it is.
  removeStore(incoming);
  let held: string;
  try {
    await copyOwnerOnly(real, incoming);
    // The log of a store copied while stopped, to be applied to it.
    if (existsSync(`${real}-wal`)) {
      await copyOwnerOnly(`${real}-wal`, `${incoming}-wal`);
    }
    held = check(incoming);
    syncFile(incoming);
  } catch (err) {
    removeStore(incoming);
    throw new Error(
      `${source}: ${(err as Error).message}; nothing was changed`,
      { cause: err },
    );
  }

  const present = STORE_FILES.filter((s) => existsSync(store + s));
  const aside =
    present.length === 0
      ? undefined
      : join(
          dataDir,
          `replaced-${new Date().toISOString().replace(/[:.]/g, '-')}`,
        );
  // From here until the copy is in place, no store opens beside the
  // marker (restore-marker.ts), and a restore run again finishes this.
  writeMarker(dataDir, { aside: aside ?? '(nothing to set aside)' });
  if (aside !== undefined) {
    mkdirSync(aside, { mode: 0o700 });
    for (const suffix of present) {
      renameSync(store + suffix, join(aside, WALLET_FILE + suffix));
    }
    syncFile(aside);
  }
  renameSync(incoming, store);
  syncFile(dataDir);
  rmSync(join(dataDir, RESTORE_MARKER));
  syncFile(dataDir);

  let replaced = '';
  if (aside !== undefined && present.includes('')) {
    replaced = `the store it replaced${present.includes('-wal') ? ', with its log,' : ''} is in ${aside}; it may hold payments taken since the backup:
  PAYGRESS_DATA_DIR=${aside} paygress wallet balance
  PAYGRESS_DATA_DIR=${aside} paygress wallet export
(proofs both stores hold may be printed by both exports: receive each once, the mint refuses the second)
`;
  } else if (aside !== undefined) {
    replaced = `what was left of a store (${present.map((s) => WALLET_FILE + s).join(', ')}, no database) is in ${aside}\n`;
  }
  return show(`${store}: restored from ${source}; ${held}\n${replaced}`)
    ? 0
    : 1;
}

/** The marker of a restore under way, written and synced. */
function writeMarker(dataDir: string, marker: RestoreMarker): void {
  const file = join(dataDir, RESTORE_MARKER);
  const fd = openSync(file, 'w', OWNER_ONLY);
  try {
    writeSync(fd, JSON.stringify(marker));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  syncFile(dataDir);
}

/** The copy of a backup a restore checks, then puts in place. */
const INCOMING = `${WALLET_FILE}.restoring`;

/** The store's database, its log and the log's index, by suffix. */
const STORE_FILES = ['', '-wal', '-shm'];

/**
 * Checks that `file` is a whole Paygress wallet store this version can
 * open, and makes it self-contained (a rollback journal, the log applied
 * and gone); what it holds, in words.
 */
function check(file: string): string {
  const db = new DatabaseSync(file);
  try {
    const verdict = db.prepare('PRAGMA quick_check(1)').get() as {
      quick_check: string;
    };
    if (verdict.quick_check !== 'ok') {
      throw new Error(`it is damaged (${verdict.quick_check})`);
    }
    const { user_version: version } = db
      .prepare('PRAGMA user_version')
      .get() as { user_version: number };
    const tables = db
      .prepare("SELECT name FROM sqlite_schema WHERE type = 'table'")
      .all() as { name: string }[];
    const names = new Set(tables.map((t) => t.name));
    if (!names.has('redemptions') || !names.has('proofs')) {
      throw new Error('it is not a Paygress wallet store');
    }
    if (version > SCHEMA_VERSION) {
      throw new Error(
        `it was written by a newer Paygress (store schema ${version}; this one knows ${SCHEMA_VERSION})`,
      );
    }
    db.exec('PRAGMA journal_mode = DELETE');
    const rows = db
      .prepare(
        `SELECT mint, unit, SUM(amount) AS amount FROM proofs
         WHERE state = 'unspent' GROUP BY mint, unit ORDER BY mint, unit`,
      )
      .all() as { mint: string; unit: string; amount: number }[];
    // Layouts before 2 have no record of exports.
    const unprinted = names.has('exports')
      ? (
          db
            .prepare('SELECT token FROM exports WHERE printed_at IS NULL')
            .all() as { token: string }[]
        ).map(({ token }) => readTokenHeader(token, Infinity))
      : [];
    const proofs =
      rows.length === 0
        ? 'it holds no unspent proofs'
        : `it holds ${rows.map((r) => `${r.amount} ${r.unit} of ${r.mint}`).join(', ')} in unspent proofs`;
    return unprinted.length === 0
      ? proofs
      : `${proofs}, and ${unprinted.map((t) => `${t.amount} ${t.unit} of ${t.mint}`).join(', ')} in tokens an export recorded and could not print`;
  } finally {
    db.close();
  }
}

/** Creates `file` empty and owner-only; `advice` when it exists. */
function createOwnerOnly(file: string, advice: string): void {
  let fd: number;
  try {
    fd = openSync(
      file,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL,
      OWNER_ONLY,
    );
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new Error(`${file} exists: ${advice}`);
    }
    throw err;
  }
  closeSync(fd);
}

/** Copies `from` into a new owner-only file `to`. */
async function copyOwnerOnly(from: string, to: string): Promise<void> {
  const out = createWriteStream(to, { flags: 'wx', mode: OWNER_ONLY });
  await once(out, 'open');
  await pipeline(createReadStream(from), out);
}

/** A store file and the files SQLite keeps beside it, gone. */
function removeStore(file: string): void {
  for (const suffix of ['', '-journal', '-wal', '-shm']) {
    rmSync(file + suffix, { force: true });
  }
}

/** fsync of a file or directory, by path. */
function syncFile(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
