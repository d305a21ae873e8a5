/**
 * `paygress wallet backup FILE` and `paygress wallet restore FILE`: a copy
 * of the wallet store taken while Paygress serves, and putting one back.
 *
 * A backup is SQLite's online backup (a consistent snapshot, the log
 * included), made owner-only, checked, turned into one self-contained
 * file and synced before it takes its name, which it never takes from an
 * existing file. A restore runs only while no Paygress serves from the
 * data directory and no other wallet command runs (it takes both locks).
 * It checks a copy of the backup, then moves the store it replaces, with
 * its log and the log's index, into a directory of its own beside it:
 * that store may hold payments taken since the backup, and a log left
 * beside a restored file would be applied to it by SQLite, a database
 * damaged beyond use. A marker keeps every store closed while files
 * move, and a restore cut short is finished by the next one
 * (restore-marker.ts).
 */
import { once } from 'node:events';
import {
  closeSync,
  createReadStream,
  createWriteStream,
  existsSync,
  fsyncSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
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
import {
  EXPORT_LOCK_FILE,
  LOCK_FILE,
  LockHeldError,
  lockDataDir,
  lockExport,
  type DataDirLock,
} from '../store/data-dir-lock.ts';
import { createNew, OWNER_ONLY } from '../store/owner-only.ts';
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
      keyless: true,
    }).dataDir;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    say(`${err.message}\n${CONFIG_HINT}\n`);
    return 2;
  }
  try {
    return command === 'backup'
      ? await backupTo(dataDir, file)
      : await restoreFrom(dataDir, file, walletCommand(configFile));
  } catch (err) {
    say(`paygress wallet ${command}: ${(err as Error).message}\n`);
    return 1;
  }
}

/**
 * What the wallet commands print after a configuration they could not
 * read: they read the one Paygress serves with, where it keeps its store.
 */
export const CONFIG_HINT =
  'paygress wallet reads the configuration Paygress serves with, for its data directory and mints: --config FILE or PAYGRESS_CONFIG, and the same PAYGRESS_ variables';

/**
 * `paygress wallet <sub>` on the store in `dir`, as the user runs it
 * again, `--config` kept (joined with `=`, so a file named `-x` stays
 * its value).
 */
function walletCommand(configFile: string | undefined) {
  const config =
    configFile === undefined ? '' : ` --config=${shellWord(configFile)}`;
  return (sub: string, dir: string) =>
    `PAYGRESS_DATA_DIR=${shellWord(dir)} paygress wallet ${sub}${config}`;
}

/** `word` as one shell word: quoted unless it is plainly one. */
function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word)
    ? word
    : `'${word.replaceAll("'", "'\\''")}'`;
}

async function backupTo(dataDir: string, target: string): Promise<number> {
  const store = join(dataDir, WALLET_FILE);
  if (
    ownName(dataDir, resolve(target)) ||
    ownName(dataDir, `${target}.partial`)
  ) {
    throw new Error(
      `${target} is a name the store itself uses: name a file elsewhere`,
    );
  }
  const noStore = new Error(
    `no wallet store at ${store}; is dataDir (PAYGRESS_DATA_DIR) the one Paygress serves with?`,
  );
  if (!existsSync(dataDir)) throw noStore;
  // Not beside a restore, which moves the store's files while it reads.
  const commands = lockExport(dataDir);
  try {
    const unsafe = unsafeToOpen(dataDir, store);
    if (unsafe !== undefined) throw new Error(unsafe);
    if (!existsSync(store)) throw noStore;
    if (existsSync(target)) {
      throw new Error(
        `${target} exists: name a new file (a backup never replaces one)`,
      );
    }
    const folder = dirname(resolve(target));
    if (!existsSync(folder)) {
      throw new Error(
        `${folder} does not exist: make it, or name a file in a directory that does`,
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

async function restoreFrom(
  dataDir: string,
  source: string,
  again: (sub: string, dir: string) => string,
): Promise<number> {
  if (!existsSync(source)) throw new Error(`${source} does not exist`);
  makeDataDir(dataDir);
  // The commands' lock first: a second restore is told another command
  // runs, not that a Paygress serves. Then nothing may open the store
  // while it is replaced.
  const commands = lockExport(dataDir);
  try {
    let serving: DataDirLock;
    try {
      serving = lockDataDir(dataDir);
    } catch (err) {
      if (!(err instanceof LockHeldError)) throw err;
      throw new Error(
        `a Paygress is serving from ${dataDir}: stop it before restoring (nothing was changed)`,
        { cause: err },
      );
    }
    try {
      // The backup is copied and checked before anything else: a bad one
      // changes nothing, a restore cut short before it included.
      const copy = await checkedCopy(dataDir, source);
      const finished = finishCutShort(dataDir, again);
      if (finished !== undefined) say(`${finished}\n`);
      return replaceStore(dataDir, source, copy, again);
    } finally {
      serving.release();
    }
  } finally {
    commands.release();
  }
}

/**
 * Copies `source` (with the log beside the file it names, links
 * followed) into the data directory, owner-only, checked and made
 * self-contained; the copy and what it holds, in words. The backup stays
 * as it is. Nothing else is changed, whatever fails.
 */
async function checkedCopy(
  dataDir: string,
  source: string,
): Promise<{ file: string; held: string }> {
  const real = realpathSync(source);
  if (ownName(dataDir, real)) {
    throw new Error(
      `${source} is one of the store's own files: restore from a backup kept elsewhere; nothing was changed`,
    );
  }
  const copy = join(dataDir, CHECKING);
  removeStore(copy);
  try {
    await copyOwnerOnly(real, copy);
    // The log of a store copied while stopped, to be applied to it.
    if (existsSync(`${real}-wal`)) {
      await copyOwnerOnly(`${real}-wal`, `${copy}-wal`);
    }
    const held = check(copy);
    syncFile(copy);
    return { file: copy, held };
  } catch (err) {
    removeStore(copy);
    throw new Error(
      `${source}: ${(err as Error).message}; nothing was changed`,
      { cause: err },
    );
  }
}

/**
 * Finishes a restore cut short: what is left of the store it was
 * replacing joins the rest in the directory its marker names, and the
 * copy it was putting in place is dropped. What it did, in words.
 */
function finishCutShort(
  dataDir: string,
  again: (sub: string, dir: string) => string,
): string | undefined {
  const marker = readRestoreMarker(dataDir);
  if (marker === undefined) return undefined;
  if (marker.moving) {
    throw new Error(
      `${dataDir} is a directory a restore is moving a store into: run paygress wallet restore on ${dirname(dataDir)}, which finishes it; nothing was changed`,
    );
  }
  const store = join(dataDir, WALLET_FILE);
  const placing = join(dataDir, INCOMING);
  // Its copy still there: the copy was not put in place, so the store's
  // files here are the old one's. Gone: the copy is the store.
  if (existsSync(placing) && marker.aside !== undefined) {
    const left = STORE_FILES.filter((s) => existsSync(store + s));
    // The directory this restore made, still filling, or not made yet:
    // never one holding something else, beside which the files would
    // join another store.
    if (
      existsSync(marker.aside) &&
      readdirSync(marker.aside).length > 0 &&
      !readRestoreMarker(marker.aside)?.moving
    ) {
      throw new Error(
        `${marker.aside} is named by ${join(dataDir, RESTORE_MARKER)} but is not the one that restore was filling: start nothing on ${dataDir}, put the store's files back together by hand, then move ${RESTORE_MARKER} away`,
      );
    }
    mkdirSync(marker.aside, { recursive: true, mode: 0o700 });
    moveStore(store, left, marker.aside);
  }
  removeStore(placing);
  rmSync(join(dataDir, RESTORE_MARKER));
  syncFile(dataDir);
  if (marker.aside === undefined) {
    return 'a restore cut short before it moved anything was dropped';
  }
  return `a restore cut short was finished first: the store it was replacing is in ${marker.aside}, whole; it may hold payments taken since its backup (${again('balance', marker.aside)})`;
}

function replaceStore(
  dataDir: string,
  source: string,
  copy: { file: string; held: string },
  again: (sub: string, dir: string) => string,
): number {
  const store = join(dataDir, WALLET_FILE);
  const placing = join(dataDir, INCOMING);
  try {
    renameSync(copy.file, placing);
  } catch (err) {
    removeStore(copy.file);
    throw new Error(`${(err as Error).message}; nothing was changed`, {
      cause: err,
    });
  }
  const present = STORE_FILES.filter((s) => existsSync(store + s));
  const aside =
    present.length === 0
      ? undefined
      : join(
          realpathSync(dataDir),
          `replaced-${new Date().toISOString().replace(/[:.]/g, '-')}`,
        );
  // From here until the copy is in place, no store opens beside the
  // marker (restore-marker.ts), nor in the directory the old one goes
  // to, and a restore run again finishes this one.
  writeMarker(dataDir, aside === undefined ? {} : { aside: basename(aside) });
  try {
    if (aside !== undefined) {
      mkdirSync(aside, { mode: 0o700 });
      writeMarker(aside, { moving: true });
      moveStore(store, present, aside);
    }
    renameSync(placing, store);
    syncFile(dataDir);
    rmSync(join(dataDir, RESTORE_MARKER));
    syncFile(dataDir);
  } catch (err) {
    throw new Error(
      `the restore stopped half done (${(err as Error).message}): nothing opens the store until paygress wallet restore is run again, which finishes it`,
      { cause: err },
    );
  }

  let replaced = '';
  if (aside !== undefined && present.includes('')) {
    replaced = `the store it replaced${present.includes('-wal') ? ', with its log,' : ''} is in ${aside}; it may hold payments taken since the backup:
  ${again('balance', aside)}
  ${again('export', aside)}
(proofs both stores hold may be printed by both exports: receive each once, the mint refuses the second)
`;
  } else if (aside !== undefined) {
    replaced = `what was left of a store (${present.map((s) => WALLET_FILE + s).join(', ')}, no database) is in ${aside}\n`;
  }
  return show(`${store}: restored from ${source}; ${copy.held}\n${replaced}`)
    ? 0
    : 1;
}

/**
 * Moves the store's files of `suffixes` into `aside`, synced, then drops
 * the marker that kept `aside` closed while they moved (if it has one).
 */
function moveStore(store: string, suffixes: string[], aside: string): void {
  for (const suffix of suffixes) {
    moveNew(store + suffix, join(aside, WALLET_FILE + suffix));
  }
  syncFile(aside);
  rmSync(join(aside, RESTORE_MARKER), { force: true });
  syncFile(aside);
}

/**
 * Moves `from` to `to`, never over an existing file: a hard link fails on
 * one, where a rename would replace it (and what it held).
 */
function moveNew(from: string, to: string): void {
  try {
    linkSync(from, to);
  } catch (err) {
    // Linked already by a move cut short before its unlink.
    if (
      (err as NodeJS.ErrnoException).code !== 'EEXIST' ||
      !sameFile(from, to)
    ) {
      throw err;
    }
  }
  rmSync(from);
}

function sameFile(a: string, b: string): boolean {
  const [x, y] = [lstatSync(a), lstatSync(b)];
  return x.dev === y.dev && x.ino === y.ino;
}

/** The marker of a restore under way, written and synced. */
function writeMarker(dir: string, marker: RestoreMarker): void {
  const file = join(dir, RESTORE_MARKER);
  const fd = openSync(file, 'w', OWNER_ONLY);
  try {
    writeSync(fd, JSON.stringify(marker));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  syncFile(dir);
}

/** Whether `path` (links resolved) is one of the data directory's own. */
function ownName(dataDir: string, path: string): boolean {
  let dir: string;
  try {
    dir = realpathSync(dirname(path));
  } catch {
    return false;
  }
  let home: string;
  try {
    home = realpathSync(dataDir);
  } catch {
    return false;
  }
  return dir === home && OWN_NAMES.has(basename(path));
}

/** The copy of a backup being checked. */
const CHECKING = `${WALLET_FILE}.checking`;

/** The checked copy a restore puts in place. */
const INCOMING = `${WALLET_FILE}.restoring`;

/** The store's database and the files SQLite keeps beside it, by suffix. */
const STORE_FILES = ['', '-wal', '-shm', '-journal'];

/** Names in the data directory a backup must not take. */
const OWN_NAMES = new Set([
  ...STORE_FILES.map((s) => WALLET_FILE + s),
  ...[CHECKING, INCOMING].flatMap((f) => STORE_FILES.map((s) => f + s)),
  RESTORE_MARKER,
  LOCK_FILE,
  EXPORT_LOCK_FILE,
]);

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
  try {
    createNew(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new Error(`${file} exists: ${advice}`);
    }
    throw err;
  }
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
