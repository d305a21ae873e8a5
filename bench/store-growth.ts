/**
 * How much the wallet store grows per redemption: a fresh Paygress
 * (bench/servers/paygress.ts) in front of the dev mint redeems
 * `--redemptions` fresh 100 sat tokens (three proofs each: 64, 32 and 4)
 * through forward-auth, `--concurrency` at a time (default one), and the
 * store's pages in use are
 * read before and after, in all and table by table (SQLite's `dbstat`,
 * indexes apart), through a read-only connection to the store Paygress
 * has open. Pages in use, not the file's size: a file grows in steps,
 * and its write-ahead log is reused. With `--compare DIR` (another
 * checkout, with its node_modules) that tree's Paygress is measured the
 * same way after this one's.
 *
 *   node_modules/.bin/node bench/store-growth.ts [--redemptions 500]
 *     [--concurrency 1] [--compare DIR]
 */
import { readdirSync, readlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { parseArgs } from 'node:util';
import { mintToken } from '../test/support/wallet.ts';
import { PAYGRESS_NODE_ARGS, startChild } from './lib/child.ts';
import { PRICED_PATH, forward } from './lib/fixtures.ts';

const { values } = parseArgs({
  options: {
    redemptions: { type: 'string', default: '500' },
    concurrency: { type: 'string', default: '1' },
    compare: { type: 'string' },
  },
});
const count = Number(values.redemptions);
const here = resolve(new URL('..', import.meta.url).pathname);
const trees = [here, ...(values.compare ? [resolve(values.compare)] : [])];

/** Bytes in use, in all and by table or index. */
interface Usage {
  readonly total: number;
  readonly byName: Record<string, number>;
}

function usage(file: string): Usage {
  const db = new DatabaseSync(file, { readOnly: true });
  try {
    const pragma = (name: string) =>
      Object.values(db.prepare(`PRAGMA ${name}`).get()!)[0] as number;
    const pageSize = pragma('page_size');
    const total = (pragma('page_count') - pragma('freelist_count')) * pageSize;
    const rows = db
      .prepare('SELECT name, SUM(pgsize) AS bytes FROM dbstat GROUP BY name')
      .all() as Array<{ name: string; bytes: number }>;
    return {
      total,
      byName: Object.fromEntries(rows.map((r) => [r.name, r.bytes])),
    };
  } finally {
    db.close();
  }
}

/** The wallet store a process has open, found through /proc. */
function storeOf(pid: number): string {
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    if (target.endsWith('/wallet.sqlite')) return target;
  }
  throw new Error(`process ${pid} has no wallet.sqlite open`);
}

const mint = await startChild(
  new URL('servers/timed-mint.ts', import.meta.url).pathname,
);
try {
  for (const tree of trees) {
    const tokens: string[] = [];
    for (let i = 0; i < count; i++) {
      tokens.push(await mintToken(String(mint.ports.url), 100));
    }
    const paygress = await startChild(
      join(tree, 'bench/servers/paygress.ts'),
      ['--mint', String(mint.ports.url)],
      { nodeArgs: PAYGRESS_NODE_ARGS },
    );
    try {
      const base = `http://127.0.0.1:${paygress.ports.http}`;
      const file = storeOf(paygress.pid);
      const before = usage(file);
      const queue = [...tokens];
      const redeem = async () => {
        for (let token = queue.pop(); token; token = queue.pop()) {
          const { status } = await forward(base, PRICED_PATH, [
            ['X-Cashu', token],
          ]);
          if (status !== 200) throw new Error(`redemption answered ${status}`);
        }
      };
      await Promise.all(
        Array.from({ length: Number(values.concurrency) }, redeem),
      );
      const after = usage(file);
      const per = (bytes: number) => (bytes / count).toFixed(0);
      process.stdout.write(
        `${tree}: ${count} redemptions, ${per(after.total - before.total)} bytes in use per redemption\n`,
      );
      const names = Object.keys(after.byName).sort(
        (a, b) => after.byName[b]! - after.byName[a]!,
      );
      for (const name of names) {
        const grown = after.byName[name]! - (before.byName[name] ?? 0);
        if (grown > 0) process.stdout.write(`  ${name}: ${per(grown)}\n`);
      }
    } finally {
      await paygress.stop();
    }
  }
} finally {
  await mint.stop();
}
