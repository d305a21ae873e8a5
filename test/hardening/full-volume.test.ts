/**
 * A data volume that fills up, for real: a tmpfs of 8 MiB under the
 * store. Paygress says so before it is full (a warning and
 * `paygress_data_volume_bytes`), refuses payments as its own fault once
 * it is full, with the payer's token left unspent, and takes the same
 * token once there is room again. Needs a tmpfs mount (root, or a
 * container allowed to mount); skipped with the reason otherwise.
 */
import { spawnSync } from 'node:child_process';
import {
  mkdirSync,
  openSync,
  closeSync,
  rmSync,
  rmdirSync,
  statfsSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { startDevMint } from '../../src/devmint/index.ts';
import { keptLog, send, startStack } from '../support/stack.ts';
import { mintToken } from '../support/wallet.ts';
import { tempDir } from '../support/temp-dir.ts';

const SIZE = 8 * 1024 * 1024;

const mountPoint = tempDir('paygress-volume-');
const mounted = spawnSync('mount', [
  '-t',
  'tmpfs',
  '-o',
  `size=${SIZE},mode=0700`,
  'tmpfs',
  mountPoint,
]);
const skip =
  mounted.status === 0
    ? false
    : `cannot mount a tmpfs here: ${String(mounted.stderr ?? mounted.error).trim()}`;
t.teardown(() => {
  if (mounted.status === 0) spawnSync('umount', [mountPoint]);
  rmdirSync(mountPoint);
});

/** Writes zeros to `file` until `leave` bytes are free on the volume, or none. */
function fill(file: string, leave: number): void {
  const fd = openSync(file, 'a');
  const chunk = Buffer.alloc(64 * 1024);
  try {
    for (;;) {
      const { bavail, bsize } = statfsSync(mountPoint);
      const room = Math.floor(bavail * bsize - leave);
      if (room <= 0) return;
      writeSync(fd, chunk, 0, Math.min(chunk.length, room));
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    closeSync(fd);
  }
}

t.test('a volume filling up, then full, then freed', { skip }, async (t) => {
  const dataDir = join(mountPoint, 'data');
  mkdirSync(dataDir, { mode: 0o700 });
  // 5% left: below the warning's 10%, room enough to start.
  fill(join(mountPoint, 'filler-1'), SIZE * 0.05);

  const mint = await startDevMint();
  t.teardown(() => mint.close());
  const { logger, lines } = keptLog('warn');
  const stack = await startStack({ dataDir, mint, logger });
  t.teardown(() => stack.close());

  const warning = lines.find((l) => 'availableBytes' in l);
  t.match(warning, {
    level: 40,
    dataDir,
    sizeBytes: SIZE,
    msg: /^the data volume has \d+\.\d MB of 8\.4 MB free: .*every payment is refused \(PAYGRESS_STORE_FAILED\); grow the volume/,
  });
  t.ok((warning!['availableBytes'] as number) < SIZE * 0.1, 'below a tenth');
  const metrics = await (await fetch(`${stack.base}/metrics`)).text();
  t.match(metrics, `paygress_data_volume_bytes{state="size"} ${SIZE}\n`);
  const available = Number(
    /paygress_data_volume_bytes\{state="available"\} (\d+)/.exec(metrics)?.[1],
  );
  t.ok(available > 0 && available < SIZE * 0.1, 'available on /metrics');

  const paidBefore = await mintToken(mint.url, 100);
  t.equal(
    (await send(stack, 'forward', { 'X-Cashu': paidBefore })).allowed,
    true,
    'payments go on while there is room',
  );

  fill(join(mountPoint, 'filler-2'), 0);
  const token = await mintToken(mint.url, 100);
  for (const protocol of ['forward', 'ext-authz'] as const) {
    const full = await send(stack, protocol, { 'X-Cashu': token });
    t.equal(full.allowed, false, `${protocol}: refused when full`);
    t.equal(full.reason, 'PAYGRESS_STORE_FAILED');
    if (protocol === 'forward') t.equal(full.status, 503);
    // An RPC error: Envoy fails the request closed.
    else t.equal(full.rpcError, 14, 'UNAVAILABLE');
  }
  t.equal(
    (await send(stack, 'forward', { 'X-Cashu': paidBefore })).reason,
    'PAYGRESS_TOKEN_REPLAYED',
    'an earlier payment is still refused as a replay',
  );

  rmSync(join(mountPoint, 'filler-2'));
  const freed = await send(stack, 'forward', { 'X-Cashu': token });
  t.equal(freed.allowed, true, 'the refused token pays once there is room');
  t.equal(freed.headers['x-payment-amount'], '100');
});
