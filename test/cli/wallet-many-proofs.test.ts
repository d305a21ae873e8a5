/**
 * A store that served a few hundred payments holds more than a thousand
 * proofs of one mint (a 100 sat payment leaves 64 + 32 + 4). Mints cap
 * the items of one request (the dev mint, like real ones, at 1000 Ys,
 * inputs or outputs), so `paygress wallet export` must ask about such a
 * store in several checkstate requests and hand it out in tokens a wallet
 * can receive in one swap each. Asking about every proof in one request,
 * as export once did, is refused by the mint: the export failed every
 * time, and the money could not be taken out.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { getTokenMetadata } from '@cashu/cashu-ts';
import { startDevMint } from '../../src/devmint/index.ts';
import { SqliteWalletStore } from '../../src/store/sqlite-wallet-store.ts';
import { oneSatProofs, recordProofs } from '../support/many-proofs.ts';
import { NODE, PAYGRESS_BIN } from '../support/paygress-process.ts';
import { testWallet } from '../support/wallet.ts';

const run = promisify(execFile);
// 1,050 proofs of 1 sat, what ~350 payments of 100 sat leave behind.
const PROOFS = 1050;
const PER_REDEMPTION = 3;

t.test('a store of more than a thousand proofs can be exported', async (t) => {
  // Without DLEQ proofs: only so that signing a thousand outputs is quick.
  const mint = await startDevMint({ dleq: false });
  t.teardown(() => mint.close());
  const dataDir = mkdtempSync(join(tmpdir(), 'paygress-many-proofs-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));

  // Real proofs of the mint, recorded as Paygress records its swaps.
  const proofs = await oneSatProofs(mint.url, PROOFS);
  const store = new SqliteWalletStore({ dataDir });
  recordProofs(store, mint.url, proofs, PER_REDEMPTION);
  store.close();

  let code = 0;
  let stdout = '';
  let stderr = '';
  try {
    ({ stdout, stderr } = await run(NODE, [PAYGRESS_BIN, 'wallet', 'export'], {
      env: {
        PATH: process.env.PATH ?? '',
        PAYGRESS_MINTS: mint.url,
        PAYGRESS_DATA_DIR: dataDir,
      },
      encoding: 'utf8',
      timeout: 60_000,
    }));
  } catch (err) {
    ({ code, stdout, stderr } = err as {
      code: number;
      stdout: string;
      stderr: string;
    });
  }
  t.equal(code, 0, `export succeeds: ${stderr.trim()}`);
  t.match(stderr, `exported ${PROOFS} sat in ${PROOFS} proofs`);

  const tokens = stdout.split('\n').filter(Boolean);
  t.ok(tokens.length > 1, `several tokens (${tokens.length})`);
  let received = 0;
  for (const token of tokens) {
    const count = getTokenMetadata(token).proofAmounts.length;
    t.ok(count <= 1000, 'each token is one a mint takes in one swap');
    const got = await (await testWallet(mint.url)).receive(token);
    received += got.reduce((s, p) => s + p.amount.toNumber(), 0);
  }
  t.equal(received, PROOFS, 'every stored sat reaches the operator');
});
