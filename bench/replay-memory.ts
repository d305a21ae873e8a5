/**
 * Resident memory of Paygress's replay cache: RSS of this process holding
 * a `ReplayGuard({cacheSize: 1e6})` empty, then filled with 1,000,000
 * distinct 66-character hex `Y`s (the compressed-point form Paygress
 * stores), after a full GC each time. Run with `--expose-gc`; prints one
 * JSON line. `node --expose-gc bench/replay-memory.ts [entries]`.
 */
import { randomBytes } from 'node:crypto';
import { ReplayGuard } from '../src/core/replay-guard.ts';

const entries = Number(process.argv[2] ?? 1_000_000);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');

const settle = () => {
  gc();
  gc();
  return process.memoryUsage();
};

const before = settle();
const guard = new ReplayGuard({
  cacheSize: 1_000_000,
  store: { findRedeemed: () => undefined },
});
const empty = settle();

// Ys of real proofs are 33-byte points in hex, 02 or 03 then a hash-like
// x; each is made by toString('hex') so it is a flat string, as in use.
const point = Buffer.alloc(33);
for (let i = 0; i < entries; i++) {
  if (i % 4096 === 0) randomBytes(28).copy(point, 1);
  point[0] = 2;
  point.writeUInt32BE(i, 29);
  guard.settle([point.toString('hex')]);
}
// Give V8's memory reducer a moment to hand freed pages back.
await new Promise((resolve) => setTimeout(resolve, 2000));
const filled = settle();

const mb = (n: number) => Math.round((n / 1024 / 1024) * 10) / 10;
process.stdout.write(
  `${JSON.stringify({
    entries,
    cached: guard.stats().cached,
    rssMB: {
      beforeGuard: mb(before.rss),
      empty: mb(empty.rss),
      filled: mb(filled.rss),
    },
    heapUsedMB: { empty: mb(empty.heapUsed), filled: mb(filled.heapUsed) },
    addedRssMB: mb(filled.rss - empty.rss),
  })}\n`,
);
