/**
 * SIGTERM as Kubernetes sends it when a pod stops: Paygress stops
 * accepting, answers the request already in flight, closes its store and
 * exits. Runs Paygress as a real process.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { startDevMint } from '../../src/devmint/index.ts';
import { SqliteWalletStore } from '../../src/store/sqlite-wallet-store.ts';
import { startPaygressProcess } from '../support/paygress-process.ts';
import { mintToken } from '../support/wallet.ts';

t.test('a request in flight at SIGTERM still gets its answer', async (t) => {
  const mint = await startDevMint();
  t.teardown(() => mint.close());
  const dataDir = mkdtempSync(join(tmpdir(), 'paygress-sigterm-'));
  const paygress = await startPaygressProcess({ mintUrl: mint.url, dataDir });
  t.teardown(() => paygress.kill());

  const token = await mintToken(mint.url, 100);
  mint.setFault('swap', { kind: 'delay', ms: 800 });
  const inFlight = fetch(`${paygress.base}/auth/forward`, {
    headers: { 'X-Cashu': token },
  });
  await new Promise((r) => setTimeout(r, 200));

  const stopped = paygress.stop();
  const response = await inFlight;
  await stopped;

  t.equal(response.status, 200, 'answered after SIGTERM arrived');
  t.equal(response.headers.get('x-payment-verified'), 'true');
  t.equal(paygress.running, false, 'the process exited');
  await t.rejects(fetch(`${paygress.base}/healthz`), 'no longer listening');

  const store = new SqliteWalletStore({ dataDir });
  t.teardown(() => store.close());
  t.same(
    store.balances().map((b) => b.available),
    [100],
    'the store was closed cleanly with the payment in it',
  );
  t.same(store.unfinished(), []);
});
