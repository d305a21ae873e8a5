/**
 * Request ids Paygress makes when the proxy sent none: unique within the
 * process, different across processes, and in the form Paygress itself
 * accepts from a proxy, so an id passed back in `X-Request-ID` is kept.
 */
import { execFileSync } from 'node:child_process';
import t from 'tap';
import {
  newRequestId,
  requestIdFrom,
} from '../../src/protocols/request-parts.ts';

t.test('made ids are unique and kept when sent back', async (t) => {
  const ids = Array.from({ length: 10_000 }, () => requestIdFrom(undefined));
  t.equal(new Set(ids).size, ids.length, 'no id twice');
  for (const id of [ids[0]!, ids.at(-1)!]) {
    t.equal(requestIdFrom(id), id, `${id} passes as a proxy's id`);
  }
  t.equal(requestIdFrom('bad id with spaces').includes(' '), false);
});

t.test('another process makes other ids', async (t) => {
  const child = () =>
    execFileSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { newRequestId } from ${JSON.stringify(new URL('../../src/protocols/request-parts.ts', import.meta.url).href)};
process.stdout.write(newRequestId());`,
      ],
      { encoding: 'utf8', timeout: 20_000 },
    );
  const [a, b, here] = [child(), child(), newRequestId()];
  t.match(a, /^pg-[0-9a-f]{12}-1$/, 'the first id of a process');
  t.not(a, b, 'each process its own prefix');
  t.not(a.slice(0, 16), here.slice(0, 16));
});
