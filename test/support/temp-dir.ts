/**
 * A new directory under the system's temporary one for a test's files,
 * removed when the test file ends (or when `test` does), so runs do not
 * pile wallet stores up in /tmp.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';

export function tempDir(
  prefix: string,
  test: { teardown(fn: () => void): void } = t,
): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  test.teardown(() => {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // A mode a test set may keep it; the system's clean-up takes it.
    }
  });
  return dir;
}
