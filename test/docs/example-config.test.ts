/**
 * paygress.example.yaml is what operators start from: every setting the
 * environment can set, and every key of the pod template, is shown there,
 * in use or commented out, and the file is valid as it stands once given
 * a grant key.
 */
import { readFileSync } from 'node:fs';
import t, { type Test } from 'tap';
import { parseDocument } from 'yaml';
import { ENV_VARS, loadConfig, TEMPLATE_KEYS } from '../../src/config.ts';

const file = new URL('../../paygress.example.yaml', import.meta.url).pathname;
const text = readFileSync(file, 'utf8');
const doc = parseDocument(text);

// Shown commented out, as the line that would set each.
const COMMENTED: Record<string, RegExp> = {
  'admin.host': /^# admin: \{ host: [^,]+, port: \d+ \}/m,
  'admin.port': /^# admin: \{ host: [^,]+, port: \d+ \}/m,
  'grants.key': /^grants:\n {2}# key: /m,
  'wallet.operatorPubkey': /^# wallet: \{ operatorPubkey: /m,
  'provisioning.template.serviceAccountName': /^ {4}# serviceAccountName: /m,
};

function shown(t: Test, key: string): void {
  const commented = COMMENTED[key];
  if (commented !== undefined) {
    t.match(text, commented, `${key}, commented out`);
  } else {
    t.ok(doc.hasIn(key.split('.')), key);
  }
}

t.test('the example shows every setting', async (t) => {
  for (const [, key] of ENV_VARS) shown(t, key);
  for (const key of TEMPLATE_KEYS) shown(t, `provisioning.template.${key}`);
});

t.test('the example is valid as it stands, given a grant key', async (t) => {
  const config = loadConfig({
    file,
    env: { PAYGRESS_GRANT_KEY: 'a-grant-key-of-the-operators-own-0123456789' },
  });
  t.equal(config.http.maxConnections, 1024);
  t.equal(config.mint.allowHttp, false);
  t.equal(config.logDecisions, 'payments');
  t.same(config.provisioning.template?.env, [
    { name: 'WORKSPACE_MODE', value: 'paid' },
  ]);
});
