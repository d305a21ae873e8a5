/**
 * bench/servers/paygress.ts of the checkout `BENCH_TREE` names (default
 * this one), with every `node:sqlite` call it makes timed: each
 * database's `exec` and `prepare`, each statement's `run`, `get` and
 * `all`, by SQL text. `node:sqlite` is synchronous, so this is the time
 * the store holds the event loop. On SIGUSR2 the totals since the last
 * SIGUSR2 are written as JSON to the file `BENCH_STORE_CALLS` names, and
 * started over.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync, StatementSync } from 'node:sqlite';

/** Calls and total ms, by call and SQL text. */
export type StoreCalls = Record<string, { calls: number; ms: number }>;

let totals: StoreCalls = {};
function timed<A extends unknown[], R>(
  name: (self: never, args: A) => string,
  call: (...args: A) => R,
): (...args: A) => R {
  return function (this: never, ...args: A): R {
    const start = performance.now();
    try {
      return call.apply(this, args);
    } finally {
      const key = name(this, args);
      const entry = (totals[key] ??= { calls: 0, ms: 0 });
      entry.calls++;
      entry.ms += performance.now() - start;
    }
  };
}
const text = (sql: string) => sql.replace(/\s+/g, ' ').trim();

const db = DatabaseSync.prototype;
db.exec = timed((_, [sql]: [string]) => `exec ${text(sql)}`, db.exec);
db.prepare = timed(() => 'prepare', db.prepare) as typeof db.prepare;
const statement = StatementSync.prototype;
for (const method of ['run', 'get', 'all'] as const) {
  (statement[method] as unknown) = timed(
    (self: StatementSync) => `${method} ${text(self.sourceSQL)}`,
    statement[method] as (...args: unknown[]) => unknown,
  );
}

process.on('SIGUSR2', () => {
  writeFileSync(process.env.BENCH_STORE_CALLS!, JSON.stringify(totals));
  totals = {};
});

const tree =
  process.env.BENCH_TREE ?? new URL('../..', import.meta.url).pathname;
await import(join(tree, 'bench/servers/paygress.ts'));
