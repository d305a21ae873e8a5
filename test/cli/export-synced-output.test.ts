/**
 * `paygress wallet export > tokens.txt` records each token printed in a
 * store synced to disk (a change that returned survives a power cut), so
 * no later export prints it again. The token in the file must be as
 * durable before that record is made: a power cut that keeps the record
 * but loses the file's unsynced pages loses the money.
 */
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import {
  closeSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { computeY } from '../../src/core/token.ts';
import { startDevMint } from '../../src/devmint/index.ts';
import { SqliteWalletStore } from '../../src/store/sqlite-wallet-store.ts';
import { NODE, PAYGRESS_BIN } from '../support/paygress-process.ts';
import { mintProofs } from '../support/wallet.ts';

// Loaded into the export: says on standard error when standard output is
// synced to disk.
const WATCH_SYNC = `data:text/javascript,${encodeURIComponent(`
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
for (const name of ['fsyncSync', 'fdatasyncSync']) {
  const real = fs[name];
  fs[name] = (fd, ...rest) => {
    if (fd === 1) process.stderr.write('[stdout synced]\\n');
    return real(fd, ...rest);
  };
}
syncBuiltinESMExports();
`)}`;

t.test(
  'an export to a file syncs the file before recording its tokens printed',
  async (t) => {
    const mint = await startDevMint();
    t.teardown(() => mint.close());
    const dataDir = mkdtempSync(join(tmpdir(), 'paygress-export-sync-'));
    t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));

    const proofs = await mintProofs(mint.url, 64);
    const store = new SqliteWalletStore({ dataDir });
    try {
      const id = randomUUID();
      store.begin({
        id,
        mint: mint.url,
        unit: 'sat',
        amount: 64,
        ys: [computeY(randomBytes(32).toString('hex'))],
        swap: { serialized: '{}', outputAmount: 64 },
        createdAt: Date.now(),
      });
      store.complete(
        id,
        proofs.map((p) => ({
          id: p.id,
          amount: p.amount.toNumber(),
          secret: p.secret,
          C: p.C,
        })),
        true,
      );
      store.delivered(id);
    } finally {
      store.close();
    }

    const file = join(dataDir, 'tokens.txt');
    const out = openSync(file, 'w');
    t.teardown(() => closeSync(out));
    const child = spawn(
      NODE,
      ['--import', WATCH_SYNC, PAYGRESS_BIN, 'wallet', 'export'],
      {
        env: {
          PATH: process.env.PATH ?? '',
          PAYGRESS_MINTS: mint.url,
          PAYGRESS_DATA_DIR: dataDir,
        },
        stdio: ['ignore', out, 'pipe'],
      },
    );
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += String(chunk)));
    const code = await new Promise((resolve) => child.once('close', resolve));

    t.equal(code, 0, stderr);
    t.match(readFileSync(file, 'utf8'), /^cashuB/, 'the token is in the file');
    t.same(
      (() => {
        const s = new SqliteWalletStore({ dataDir });
        try {
          return s.unprintedExports();
        } finally {
          s.close();
        }
      })(),
      [],
      'and recorded printed',
    );
    t.match(stderr, '[stdout synced]', 'after the file was synced to disk');
  },
);
