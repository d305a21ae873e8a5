/**
 * How long the reaper keeps a pod past its expiry follows the time a
 * top-up may take between checking its grant and lengthening the pod.
 */
import t from 'tap';
import { reapGraceFor } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';

const config = (env: Record<string, string>) =>
  loadConfig({ env: { PAYGRESS_MINTS: 'https://mint.example.com', ...env } });

t.test('a minute with the default timeouts', async (t) => {
  t.equal(reapGraceFor(config({})), 60_000);
});

t.test("longer with a mint's timeout set long", async (t) => {
  t.equal(
    reapGraceFor(
      config({
        PAYGRESS_MINT_TIMEOUT_MS: '120000',
        PAYGRESS_PROVISIONING_TIMEOUT_MS: '10000',
      }),
    ),
    4 * 120_000 + 10_000 + 5_000,
  );
});

t.test('never more than a quarter of an hour', async (t) => {
  t.equal(
    reapGraceFor(config({ PAYGRESS_MINT_TIMEOUT_MS: '2147483647' })),
    15 * 60_000,
  );
});
