/**
 * The data directory is made as `mkdir -p` would, 0700, and a path that
 * cannot be one is refused at once with the reason and the setting.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { StartupError } from '../../src/startup-error.ts';
import { makeDataDir } from '../../src/store/data-dir.ts';

t.test('missing directories are made, each owner-only', async (t) => {
  const root = t.testdir();
  const dir = join(root, 'a', 'b', 'c');
  makeDataDir(dir);
  for (const at of [join(root, 'a'), join(root, 'a', 'b'), dir]) {
    t.equal(statSync(at).mode & 0o777, 0o700, at);
  }
  makeDataDir(dir);
  t.ok(existsSync(dir), 'one that exists is left as it is');
  makeDataDir(`${dir}/`);
  t.pass('a trailing slash is the same directory');
});

t.test('a path that cannot be a directory is refused', async (t) => {
  const root = t.testdir({ file: '' });
  const file = join(root, 'file');
  const cases: [string, string, RegExp][] = [
    [file, 'EEXIST', /it is a file, not a directory \(EEXIST\)/],
    [join(file, 'x', 'y'), 'ENOTDIR', /a part of its path is a file/],
  ];
  // procfs refuses a new entry with ENOENT under a parent that exists:
  // Node's recursive mkdir retried it for ever.
  if (existsSync('/proc/self')) {
    cases.push([
      `/proc/paygress-${process.pid}`,
      'ENOENT',
      /does not let it be created \(ENOENT\)/,
    ]);
  }
  for (const [dir, code, why] of cases) {
    const err = (() => {
      try {
        makeDataDir(dir);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    t.ok(err instanceof StartupError, `${code}: a start-up error`);
    t.equal((err as StartupError).code, code);
    t.match((err as Error).message, why);
    t.match(
      (err as Error).message,
      `the data directory ${dir} cannot be used: `,
    );
    t.match((err as Error).message, /set dataDir \(PAYGRESS_DATA_DIR\)/);
  }
  t.ok(statSync(file).isFile(), 'the file is left alone');
});
