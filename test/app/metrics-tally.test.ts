/**
 * The decision metrics are counted outside prom-client and written at
 * scrape time; what a scrape sees must be what prom-client itself writes
 * for the same decisions with a Counter and a Histogram.
 */
import fc from 'fast-check';
import assert from 'node:assert/strict';
import client from 'prom-client';
import t from 'tap';
import { DecisionTally } from '../../src/metrics.ts';

const BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
];

const decision = fc.record({
  protocol: fc.constantFrom('forward', 'nginx', 'ext-authz'),
  outcome: fc.constantFrom('allow', 'deny'),
  // Odd label values too, to check the escaping.
  reason: fc.constantFrom(
    '',
    'PAYGRESS_PAYMENT_REQUIRED',
    'PAYGRESS_TOKEN_REPLAYED',
    'a "quoted" \\ back\nslash',
  ),
  seconds: fc.oneof(
    fc.constantFrom(0, ...BUCKETS),
    fc.double({ min: 0, max: 20, noNaN: true }),
  ),
});

t.test('renders what prom-client renders for the same decisions', async (t) => {
  await fc.assert(
    fc.asyncProperty(fc.array(decision, { maxLength: 200 }), async (all) => {
      const registry = new client.Registry();
      const counter = new client.Counter({
        name: 'paygress_decisions_total',
        help: 'Decisions by protocol, outcome (allow, deny) and reason code.',
        labelNames: ['protocol', 'outcome', 'reason'],
        registers: [registry],
      });
      const histogram = new client.Histogram({
        name: 'paygress_decision_duration_seconds',
        help: 'Time from request to decision, mint round trips included.',
        labelNames: ['protocol', 'outcome'],
        buckets: BUCKETS,
        registers: [registry],
      });
      const tally = new DecisionTally();
      for (const { protocol, outcome, reason, seconds } of all) {
        counter.inc({ protocol, outcome, reason });
        histogram.observe({ protocol, outcome }, seconds);
        tally.record(protocol, outcome, reason, seconds);
      }
      const expected = await registry.metrics();
      const actual = tally.render();
      // Series may come in another order; each metric's lines must match.
      assert.deepStrictEqual(blocks(actual), blocks(expected));
      assert.ok(actual.endsWith('\n') && !actual.endsWith('\n\n'));
    }),
    { numRuns: 150 },
  );
  t.pass('150 random sets of decisions rendered alike');
});

t.test('a sum keeps its fractions, a bucket bound is inclusive', (t) => {
  const tally = new DecisionTally();
  tally.record('forward', 'deny', 'PAYGRESS_PAYMENT_REQUIRED', 0.001);
  tally.record('forward', 'deny', 'PAYGRESS_PAYMENT_REQUIRED', 0.0015);
  tally.record('forward', 'deny', 'PAYGRESS_PAYMENT_REQUIRED', 7);
  const text = tally.render();
  const series = 'protocol="forward",outcome="deny"';
  t.match(
    text,
    `paygress_decision_duration_seconds_bucket{le="0.001",${series}} 1\n`,
  );
  t.match(
    text,
    `paygress_decision_duration_seconds_bucket{le="0.0025",${series}} 2\n`,
  );
  t.match(
    text,
    `paygress_decision_duration_seconds_bucket{le="5",${series}} 2\n`,
  );
  t.match(
    text,
    `paygress_decision_duration_seconds_bucket{le="+Inf",${series}} 3\n`,
  );
  t.match(text, `paygress_decision_duration_seconds_sum{${series}} 7.0025\n`);
  t.match(
    text,
    `paygress_decisions_total{${series},reason="PAYGRESS_PAYMENT_REQUIRED"} 3\n`,
  );
  t.end();
});

/** Each metric's block of lines: HELP and TYPE first, then its series sorted. */
function blocks(text: string): string[][] {
  return text
    .split('\n\n')
    .map((block) => block.split('\n').filter((line) => line !== ''))
    .filter((lines) => lines.length > 0)
    .map((lines) => [...lines.slice(0, 2), ...lines.slice(2).sort()]);
}
