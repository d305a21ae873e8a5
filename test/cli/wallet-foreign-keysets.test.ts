/**
 * A mint reports proofs of keysets it never had as unspent. Export must
 * not hand such worthless proofs out as money: it leaves them in the store
 * and says so.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import t from 'tap';
import { startDevMint } from '../../src/devmint/index.ts';
import { NODE, PAYGRESS_BIN } from '../support/paygress-process.ts';
import { send, startStack } from '../support/stack.ts';
import { mintToken } from '../support/wallet.ts';
import { tempDir } from '../support/temp-dir.ts';

const run = promisify(execFile);

t.test(
  'proofs of keysets the mint does not list stay in the store',
  async (t) => {
    const dataDir = tempDir('paygress-foreign-');
    const before = await startDevMint();
    const port = Number(new URL(before.url).port);
    const stack = await startStack({ mint: before, dataDir });
    const token = await mintToken(before.url, 100);
    t.equal((await send(stack, 'forward', { 'X-Cashu': token })).allowed, true);
    await stack.close();
    await before.close();

    // Another mint at the same address, with other keys (a reset dev mint).
    const after = await startDevMint({ port });
    t.teardown(() => after.close());
    // Asynchronous: the mint answering the command runs in this process.
    const wallet = (command: string) =>
      run(NODE, [PAYGRESS_BIN, 'wallet', command], {
        env: {
          PATH: process.env.PATH ?? '',
          PAYGRESS_MINTS: after.url,
          PAYGRESS_DATA_DIR: dataDir,
        },
        encoding: 'utf8',
        timeout: 30_000,
      });

    const exported = await wallet('export');
    t.equal(exported.stdout, '', 'no token printed');
    t.match(
      exported.stderr,
      /proofs of keysets the mint does not list were not exported/,
    );
    const balance = await wallet('balance');
    t.match(balance.stdout, /\t100 sat available\t/, 'still in the store');
  },
);
