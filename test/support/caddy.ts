/**
 * Runs the real Caddy (Debian's caddy 2.6, /usr/bin/caddy) on loopback for
 * conformance tests, from a Caddyfile `deploy/` ships with its
 * placeholders filled in. Caddy's home, data and config directories point
 * into a temp directory, so nothing outside it is written.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { captureStderr, startedPeer, type PeerProcess } from './nginx.ts';

/** Path of the Caddy binary. */
export const CADDY_BIN = '/usr/bin/caddy';

/**
 * Starts Caddy with `caddyfile` as its whole configuration and resolves
 * once every port in `ports` accepts connections on 127.0.0.1.
 */
export async function startCaddy(
  caddyfile: string,
  ports: readonly number[],
): Promise<PeerProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'paygress-caddy-'));
  const file = join(dir, 'Caddyfile');
  writeFileSync(file, caddyfile);

  const child = spawn(
    CADDY_BIN,
    ['run', '--config', file, '--adapter', 'caddyfile'],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: dir,
        XDG_DATA_HOME: join(dir, 'data'),
        XDG_CONFIG_HOME: join(dir, 'config'),
      },
    },
  );
  return startedPeer(child, dir, ports, captureStderr(child));
}
