/**
 * `secp256k1` chooses the build of libsecp256k1 a running Paygress
 * redeems with: each build takes real cashu-ts tokens at the dev mint
 * (checking their DLEQ proofs and the mint's, making and unblinding the
 * outputs) into proofs the mint then takes, the start-up line names the
 * build, and a value Paygress does not know is refused before it starts.
 */
import t from 'tap';
import { Amount, getEncodedToken } from '@cashu/cashu-ts';
import { loadConfig } from '../../src/config.ts';
import { useSecp256k1 } from '../../src/core/curve.ts';
import { keptLog, startStack } from '../support/stack.ts';
import { mintToken, testWallet } from '../support/wallet.ts';

t.teardown(() => useSecp256k1('auto'));

for (const [setting, build] of [
  ['wasm', 'wasm'],
  ['native', 'native'],
  ['auto', 'native'],
] as const) {
  t.test(`secp256k1: ${setting}`, async (t) => {
    const { logger, lines } = keptLog();
    const stack = await startStack({
      env: { PAYGRESS_SECP256K1: setting },
      logger,
    });
    t.teardown(() => stack.close());
    t.match(
      lines.find((l) => l.msg === 'paygress listening'),
      {
        secp256k1: build,
        addresses: {
          http: `127.0.0.1:${stack.app.httpPort}`,
          grpc: `127.0.0.1:${stack.app.grpcPort}`,
        },
      },
      'the start-up line names the build and where each listener listens',
    );

    const pay = (headers: Record<string, string>) =>
      fetch(`${stack.base}/auth/forward`, {
        headers: { 'X-Forwarded-Uri': '/premium', ...headers },
      }).then(async (res) => {
        await res.text();
        return res;
      });
    for (let i = 0; i < 3; i++) {
      const token = await mintToken(stack.mint.url, 100);
      const paid = await pay({ 'X-Cashu': token });
      t.equal(paid.status, 200, 'a real token is redeemed');
      t.equal(paid.headers.get('x-payment-amount'), '100');
      t.equal((await pay({ 'X-Cashu': token })).status, 402, 'once');
    }
    const [balance] = stack.app.store.balances();
    t.match(balance, { unit: 'sat', available: 300 }, 'every sat is stored');

    // The stored proofs are money: the mint takes them (a wrong unblinding
    // would leave proofs it refuses).
    const stored = stack.app.store.unspent(balance!.mint, 'sat');
    const wallet = await testWallet(stack.mint.url);
    const taken = await wallet.receive(
      getEncodedToken({
        mint: stack.mint.url,
        unit: 'sat',
        proofs: stored.map(({ id, amount, secret, C }) => ({
          id,
          amount: Amount.from(amount),
          secret,
          C,
        })),
      }),
    );
    t.equal(
      taken.reduce((sum, p) => sum + Number(p.amount), 0),
      300,
      'the mint swaps every stored proof',
    );
  });
}

t.test('an unknown build is refused at start-up', async (t) => {
  t.throws(
    () => loadConfig({ env: { PAYGRESS_SECP256K1: 'js' } }),
    /secp256k1.*auto, native, wasm/s,
  );
});
