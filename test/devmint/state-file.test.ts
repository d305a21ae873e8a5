/**
 * A dev mint restarted on the same state file keeps its keys and ledger:
 * ecash from its earlier run stays spendable, and spent ecash stays spent.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { startDevMint } from '../../src/devmint/index.ts';
import { mintToken, testWallet } from '../support/wallet.ts';
import { tempDir } from '../support/temp-dir.ts';

t.test('keys and ledger survive a restart', async (t) => {
  const stateFile = join(tempDir('devmint-state-'), 's.json');

  const first = await startDevMint({ stateFile });
  const keep = await mintToken(first.url, 64);
  const spend = await mintToken(first.url, 32);
  await (await testWallet(first.url)).receive(spend);
  const keysets = await (await fetch(`${first.url}/v1/keysets`)).json();
  const port = Number(new URL(first.url).port);
  await first.close();
  // Let pooled client connections to the old listener see it close.
  await new Promise((resolve) => setTimeout(resolve, 300));

  const second = await startDevMint({ stateFile, port });
  t.teardown(() => second.close());
  t.same(
    await (await fetch(`${second.url}/v1/keysets`)).json(),
    keysets,
    'same keysets',
  );

  const wallet = await testWallet(second.url);
  await t.rejects(
    wallet.receive(spend),
    'a proof spent before the restart stays spent',
  );
  const received = await wallet.receive(keep);
  t.equal(
    received.reduce((n, p) => n + p.amount.toNumber(), 0),
    64,
    'ecash of the earlier run is still good',
  );
});

t.test('the state file, which holds the seed, is owner-only', async (t) => {
  const dir = tempDir('devmint-state-');
  const stateFile = join(dir, 's.json');
  const previous = process.umask(0o022);
  t.teardown(() => process.umask(previous));
  const mint = await startDevMint({ stateFile });
  t.teardown(() => mint.close());
  await mintToken(mint.url, 8);
  t.equal(statSync(stateFile).mode & 0o777, 0o600);
});
