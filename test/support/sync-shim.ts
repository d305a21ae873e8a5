/**
 * Builds test/support/sync-shim.c with the machine's C compiler, for a
 * child process to preload (`LD_PRELOAD`): its fsyncs are logged
 * (`SYNC_LOG`) or slowed (`SLOW_SYNC_US`). Undefined where there is no
 * compiler.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

/** Compiles the shim into `dir`; its path, or undefined without `cc`. */
export function buildSyncShim(dir: string): string | undefined {
  const out = join(dir, 'sync-shim.so');
  try {
    execFileSync(
      'cc',
      [
        '-shared',
        '-fPIC',
        '-O2',
        '-o',
        out,
        new URL('sync-shim.c', import.meta.url).pathname,
        '-ldl',
      ],
      { stdio: 'ignore' },
    );
    return out;
  } catch {
    return undefined;
  }
}
