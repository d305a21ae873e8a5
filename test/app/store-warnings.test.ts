/**
 * At start, Paygress says what its wallet store holds that the
 * configuration no longer serves: a store it just made (a mistyped
 * dataDir reads as an empty wallet), value at a mint no longer listed,
 * and proofs stored before the operator's key was set.
 */
import t from 'tap';
import { createRandomSecretKey, getPubKeyFromPrivKey } from '@cashu/cashu-ts';
import { startDevMint } from '../../src/devmint/index.ts';
import { keptLog, send, startStack } from '../support/stack.ts';
import { tempDir } from '../support/temp-dir.ts';
import { mintToken } from '../support/wallet.ts';

const a = await startDevMint();
t.teardown(() => a.close());
const b = await startDevMint();
t.teardown(() => b.close());

/** The warnings of a Paygress started with `env` on `dataDir`. */
async function warningsAt(
  dataDir: string,
  env: Record<string, string>,
  work: (s: Awaited<ReturnType<typeof startStack>>) => Promise<void> = () =>
    Promise.resolve(),
): Promise<string[]> {
  const log = keptLog('warn');
  const s = await startStack({ mint: a, dataDir, env, logger: log.logger });
  try {
    await work(s);
  } finally {
    await s.close();
  }
  return log.lines.map((l) => String(l.msg));
}

t.test('a store made at this start is said to be new, once', async (t) => {
  const dataDir = tempDir('paygress-new-store-');
  const env = { PAYGRESS_MINTS: a.url };
  const first = await warningsAt(dataDir, env);
  t.ok(
    first.some((m) => m.startsWith('a new, empty wallet store was made at ')),
  );
  const second = await warningsAt(dataDir, env);
  t.notOk(second.some((m) => m.includes('new, empty wallet store')));
});

t.test('value at a mint no longer listed is named', async (t) => {
  const dataDir = tempDir('paygress-unlisted-');
  await warningsAt(
    dataDir,
    { PAYGRESS_MINTS: `${a.url};${b.url}` },
    async (s) => {
      const out = await send(s, 'forward', {
        'X-Cashu': await mintToken(b.url, 1000),
      });
      t.equal(out.allowed, true);
    },
  );
  const after = await warningsAt(dataDir, { PAYGRESS_MINTS: a.url });
  t.ok(
    after.includes(
      `the wallet store holds 1000 sat at ${b.url}, which is not in mints: its pending redemptions cannot be settled and payments owed there cannot be delivered; list it again to settle them, or take the money out with paygress wallet export`,
    ),
    after.join('\n'),
  );
});

t.test('proofs stored before the operator key was set are named', async (t) => {
  const dataDir = tempDir('paygress-unlocked-');
  const newKey = () =>
    Buffer.from(getPubKeyFromPrivKey(createRandomSecretKey())).toString('hex');
  const key = newKey();
  const pay = async (s: Awaited<ReturnType<typeof startStack>>) => {
    const out = await send(s, 'forward', {
      'X-Cashu': await mintToken(a.url, 1000),
    });
    t.equal(out.allowed, true);
  };
  const bearer = await warningsAt(dataDir, { PAYGRESS_MINTS: a.url }, pay);
  t.notOk(bearer.some((m) => m.includes('not locked to')));
  // Another payment under the key: only the first is counted.
  const env = { PAYGRESS_MINTS: a.url, PAYGRESS_OPERATOR_PUBKEY: key };
  await warningsAt(dataDir, env, pay);
  const locked = await warningsAt(dataDir, env);
  t.ok(
    locked.includes(
      `the wallet store holds 1000 sat at ${a.url} in proofs locked to no key (stored before wallet.operatorPubkey was set): anyone who reads the data directory can spend them; take them out with paygress wallet export`,
    ),
    locked.join('\n'),
  );
  t.notOk(locked.some((m) => m.includes('another key')));

  // Under a new key, the proofs locked to the first are named apart.
  const rotated = await warningsAt(dataDir, {
    PAYGRESS_MINTS: a.url,
    PAYGRESS_OPERATOR_PUBKEY: newKey(),
  });
  t.ok(
    rotated.includes(
      `the wallet store holds 1000 sat at ${a.url} in proofs locked to another key than wallet.operatorPubkey (one set before): only that key's private key spends them; take them out with paygress wallet export and receive them with it`,
    ),
    rotated.join('\n'),
  );
  t.ok(rotated.some((m) => m.includes('1000 sat') && m.includes('no key')));
});
