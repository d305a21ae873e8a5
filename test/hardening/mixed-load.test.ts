/**
 * A bounded mixed load over the three protocols: valid tokens, replays,
 * garbage and missing tokens, with the mint failing for a window in the
 * middle. At the end every paid sat is in the store, no token was allowed
 * twice, nothing is left to settle, and the heap is back near its start.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import t from 'tap';
import { mintToken } from '../support/wallet.ts';
import { PROTOCOLS, send, startStack, type Outcome } from '../support/stack.ts';

const PRICE = 100;
const WAVES = 12;
const PER_WAVE = 24;
// The mint answers HTTP 500 to swaps during these waves.
const FAULTY = new Set([4, 5, 6]);

// tap does not pass --expose-gc; the flag can still be set at run time,
// and a fresh context then sees `gc`, so the heap is measured after a full
// collection rather than at whatever point the collector last ran.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const stack = await startStack({ price: PRICE });
t.teardown(() => stack.close());

t.test('mixed load with a mint fault window', async (t) => {
  const heapBefore = heapAfterGc();
  const allowedBy = new Map<string, number>();
  const spare: string[] = [];
  let allowedSats = 0;
  let refusals = 0;

  for (let wave = 0; wave < WAVES; wave++) {
    if (FAULTY.has(wave)) {
      stack.mint.setFault('swap', { kind: 'status', status: 500 });
    }
    const fresh = await Promise.all(
      Array.from({ length: 4 }, () => mintToken(stack.mint.url, PRICE)),
    );
    const replays = [...allowedBy.keys()].slice(-4);
    // Tokens refused for our fault are retried in a later wave.
    const retries = spare.splice(0);
    const tokens = [...fresh, ...replays, ...retries];

    const jobs: Promise<[string | undefined, Outcome]>[] = [];
    for (let i = 0; i < PER_WAVE; i++) {
      const protocol = PROTOCOLS[i % PROTOCOLS.length]!;
      const kind = i % 4;
      const token =
        kind === 0 || kind === 1
          ? tokens[i % tokens.length]
          : kind === 2
            ? `cashuB${'x'.repeat(i)}`
            : undefined;
      const headers: Record<string, string> =
        token === undefined ? {} : { 'X-Cashu': token };
      jobs.push(send(stack, protocol, headers).then((out) => [token, out]));
    }

    for (const [token, out] of await Promise.all(jobs)) {
      if (out.allowed) {
        allowedBy.set(token!, (allowedBy.get(token!) ?? 0) + 1);
        allowedSats += Number(out.headers['x-payment-amount']);
        continue;
      }
      refusals++;
      t.not(out.status, 500, 'never a 500');
      t.ok(out.reason, 'every refusal has a reason');
      const ours =
        out.reason === 'PAYGRESS_MINT_ERROR' ||
        out.reason === 'PAYGRESS_TOKEN_PENDING';
      if (ours && token !== undefined && !allowedBy.has(token)) {
        spare.push(token);
      }
    }
    stack.mint.setFault('swap', undefined);
  }

  const twice = [...allowedBy.values()].filter((n) => n > 1).length;
  t.equal(twice, 0, 'no token was allowed more than once');
  t.ok(allowedBy.size > 0 && refusals > 0, 'both allows and refusals ran');

  const balances = stack.app.store.balances();
  const available = balances.reduce((s, b) => s + b.available, 0);
  const pending = balances.reduce((s, b) => s + b.pending, 0);
  t.equal(pending, 0, 'nothing is left to settle');
  t.equal(available, allowedSats, 'every paid sat is in the store');
  t.equal(available, PRICE * allowedBy.size);

  // Loose on purpose: caches (keysets, wallets, replay LRU) may grow a
  // little; only a leak on the scale of the load should trip this.
  const heapAfter = heapAfterGc();
  t.comment(`heap ${mb(heapBefore)} MB -> ${mb(heapAfter)} MB`);
  t.ok(heapAfter < heapBefore + 32 * 2 ** 20, 'heap back near its start');
});

function heapAfterGc(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

function mb(bytes: number): string {
  return (bytes / 2 ** 20).toFixed(1);
}
