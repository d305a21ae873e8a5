/**
 * Pricing rules whose price tells which request Paygress believed it saw:
 * POST /premium costs 7 sat, /public is free, everything else the stack's
 * default. Conformance tests use them to check that a proxy passed the
 * original method and URI, not its own.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { startRecordingUpstream } from './recording-upstream.ts';
import { startStack } from './stack.ts';

/** Writes the rules to a temporary YAML file, removed at teardown. */
export function probeRulesFile(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'paygress-rules-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'paygress.yaml');
  writeFileSync(
    file,
    [
      'pricing:',
      '  rules:',
      '    - name: public',
      '      match: { path: /public, pathMatch: prefix }',
      '      free: true',
      '    - name: premium-post',
      '      match: { path: /premium, pathMatch: prefix, methods: [POST] }',
      '      price: { amount: 7, unit: sat }',
      '',
    ].join('\n'),
  );
  return file;
}

/**
 * A stack priced by these rules (everything else 100 sat) and an upstream
 * that records what reaches it, both closed at teardown.
 */
export async function startProbeStack(t: Test) {
  const stack = await startStack({
    price: 100,
    env: { PAYGRESS_CONFIG: probeRulesFile(t) },
  });
  t.teardown(() => stack.close());
  const upstream = await startRecordingUpstream();
  t.teardown(() => upstream.close());
  return { stack, upstream };
}
