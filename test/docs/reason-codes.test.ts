/**
 * docs/reason-codes.md is what operators branch on: it must list every
 * code the code can produce, with the fault the code really has, and no
 * code that does not exist.
 */
import { readFileSync } from 'node:fs';
import t from 'tap';
import { REASONS } from '../../src/core/errors.ts';

const doc = readFileSync(
  new URL('../../docs/reason-codes.md', import.meta.url),
  'utf8',
);
const rows = [
  ...doc.matchAll(/^\|\s*`(PAYGRESS_[A-Z_]+)`\s*\|\s*(payer|ours)\s*\|/gm),
];
const documented = new Map(rows.map((m) => [m[1]!, m[2]!]));

t.test('every reason code is documented with its fault', async (t) => {
  for (const [code, fault] of Object.entries(REASONS)) {
    t.equal(documented.get(code), fault, code);
  }
});

t.test('the document names no code that does not exist', async (t) => {
  for (const code of documented.keys()) {
    t.ok(code in REASONS, `${code} exists`);
  }
  t.equal(rows.length, documented.size, 'no code listed twice');
});
