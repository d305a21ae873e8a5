/**
 * paygress.example.yaml is what operators start from: every setting the
 * environment can set is shown there too, in use or commented out, and
 * the file is valid as it stands once given a grant key.
 */
import { readFileSync } from 'node:fs';
import t from 'tap';
import { ENV_VARS, loadConfig } from '../../src/config.ts';

const file = new URL('../../paygress.example.yaml', import.meta.url).pathname;
const text = readFileSync(file, 'utf8');

t.test('the example shows every setting', async (t) => {
  for (const [name, key] of ENV_VARS) {
    const last = key.split('.').at(-1)!;
    t.match(text, new RegExp(`\\b${last}:`), `${key} (${name})`);
  }
});

t.test('the example is valid as it stands, given a grant key', async (t) => {
  const config = loadConfig({
    file,
    env: { PAYGRESS_GRANT_KEY: 'a-grant-key-of-the-operators-own-0123456789' },
  });
  t.equal(config.http.maxConnections, 1024);
  t.equal(config.mint.allowHttp, false);
  t.equal(config.logDecisions, 'payments');
});
