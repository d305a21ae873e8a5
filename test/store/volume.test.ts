/**
 * The warning of a data volume running out of room: below a tenth free,
 * logged at once and then every ten minutes while it stays so, and
 * never when the system cannot say.
 */
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  LOW_SPACE_REPEAT_MS,
  lowSpaceWarning,
  volumeSpace,
  type VolumeSpace,
} from '../../src/store/volume.ts';
import { keptLog } from '../support/stack.ts';

t.test('warned below a tenth free, once per ten minutes', async (t) => {
  const { logger, lines } = keptLog('warn');
  let space: VolumeSpace | undefined = { available: 100, size: 1000 };
  let now = 0;
  const check = lowSpaceWarning(
    '/data',
    logger,
    () => space,
    () => now,
  );
  const warnings = () => lines.filter((l) => 'availableBytes' in l).length;

  check();
  t.equal(warnings(), 0, 'a tenth free is enough');
  space = { available: 99, size: 1000 };
  check();
  t.equal(warnings(), 1);
  t.match(lines.at(-1), {
    level: 40,
    dataDir: '/data',
    availableBytes: 99,
    sizeBytes: 1000,
  });
  now += LOW_SPACE_REPEAT_MS - 1;
  check();
  t.equal(warnings(), 1, 'not again within ten minutes');
  now += 1;
  check();
  t.equal(warnings(), 2, 'again after them');
  space = undefined;
  now += LOW_SPACE_REPEAT_MS;
  check();
  t.equal(warnings(), 2, 'nothing when the space is unknown');
});

t.test('the space of a real directory, and of none', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'paygress-volume-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const space = volumeSpace(dir);
  t.ok(space !== undefined && space.size > 0);
  t.ok(space!.available <= space!.size);
  t.equal(volumeSpace(join(dir, 'missing')), undefined);
});
