/**
 * A mint listed for a unit it has no keyset in can never be paid in that
 * unit: Paygress says so when it loads the mint's keysets.
 */
import t from 'tap';
import { startDevMint } from '../../src/devmint/index.ts';
import { keptLog, startStack } from '../support/stack.ts';

const WARNING = /no active keyset in a unit it is listed for/;

t.test('a unit the mint does not issue is named at load', async (t) => {
  const mint = await startDevMint({ units: ['sat'] });
  t.teardown(() => mint.close());
  const log = keptLog('warn');
  const s = await startStack({
    mint,
    logger: log.logger,
    env: {
      PAYGRESS_MINTS: `${mint.url}=sat,usd`,
      PAYGRESS_DEFAULT_UNIT: 'sat',
    },
  });
  t.teardown(() => s.close());
  const line = log.lines.find((l) => WARNING.test(String(l.msg)));
  t.ok(line, 'warned');
  t.same(line?.units, ['usd']);
  t.same(line?.mintUnits, ['sat']);
});

t.test('no warning when every unit has a keyset', async (t) => {
  const mint = await startDevMint({ units: ['sat', 'usd'] });
  t.teardown(() => mint.close());
  const log = keptLog('warn');
  const s = await startStack({
    mint,
    logger: log.logger,
    env: { PAYGRESS_MINTS: `${mint.url}=sat,usd` },
  });
  t.teardown(() => s.close());
  t.notOk(log.lines.some((l) => WARNING.test(String(l.msg))));
});
