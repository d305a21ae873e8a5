/**
 * What counting one decision costs: prom-client's Counter `inc` and
 * Histogram `observe` with their labels, as Paygress first counted
 * decisions, against the DecisionTally it counts them with now (rendered
 * the same at scrape time). One million decisions per round, in
 * alternation, nanoseconds per decision.
 *
 *   node_modules/.bin/node bench/observe-cost.ts [--rounds 5]
 */
import { parseArgs } from 'node:util';
import client from 'prom-client';
import { DecisionTally } from '../src/metrics.ts';

const { values } = parseArgs({
  options: { rounds: { type: 'string', default: '5' } },
});
const CALLS = 1_000_000;
const BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
];

const registry = new client.Registry();
const counter = new client.Counter({
  name: 'decisions_total',
  help: 'decisions',
  labelNames: ['protocol', 'outcome', 'reason'],
  registers: [registry],
});
const histogram = new client.Histogram({
  name: 'decision_seconds',
  help: 'latency',
  labelNames: ['protocol', 'outcome'],
  buckets: BUCKETS,
  registers: [registry],
});
const tally = new DecisionTally();

const ways = {
  'prom-client': (protocol: string, reason: string, seconds: number) => {
    counter.inc({ protocol, outcome: 'deny', reason });
    histogram.observe({ protocol, outcome: 'deny' }, seconds);
  },
  tally: (protocol: string, reason: string, seconds: number) =>
    tally.record(protocol, 'deny', reason, seconds),
};
const results = new Map<string, number[]>();
for (let round = 0; round < Number(values.rounds); round++) {
  for (const [name, count] of Object.entries(ways)) {
    const started = process.hrtime.bigint();
    for (let i = 0; i < CALLS; i++) {
      count(
        i & 1 ? 'forward' : 'ext-authz',
        'PAYGRESS_PAYMENT_REQUIRED',
        0.0001 * (i & 63),
      );
    }
    const ns = Number(process.hrtime.bigint() - started) / CALLS;
    results.set(name, [...(results.get(name) ?? []), ns]);
  }
}
for (const [name, ns] of results) {
  process.stdout.write(
    `${name}: ${ns.map((v) => v.toFixed(0)).join(', ')} ns per decision\n`,
  );
}
