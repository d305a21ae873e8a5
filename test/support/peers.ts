/**
 * The real proxies the conformance tests drive come from Debian. Where one
 * is not installed (a laptop, say), its tests are skipped with a message
 * saying how to install it, instead of failing; CI installs them all.
 */
import { existsSync } from 'node:fs';
import type { Test } from 'tap';

const INSTALL = 'sudo apt-get install nginx-light caddy';

/**
 * Runs `cases` (a module registering the tests) when every binary exists;
 * otherwise plans no tests and says what is missing.
 */
export async function withPeers(
  t: Test,
  binaries: readonly string[],
  cases: () => Promise<unknown>,
): Promise<void> {
  const missing = binaries.filter((bin) => !existsSync(bin));
  if (missing.length > 0) {
    t.plan(0, `skipped: ${missing.join(', ')} not installed (${INSTALL})`);
    return;
  }
  await cases();
}
