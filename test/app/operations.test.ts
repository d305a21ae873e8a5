/**
 * What an operator watches: metrics with stable reason labels, readiness
 * that waits for the mint, and a shutdown that still answers the request
 * in flight.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { mintToken } from '../support/wallet.ts';
import { send, startStack } from '../support/stack.ts';
import type { Provisioner } from '../../src/core/ports.ts';
import { startDevMint } from '../../src/devmint/index.ts';

t.test(
  '/metrics counts decisions by reason and mint calls by outcome',
  async (t) => {
    const s = await startStack();
    t.teardown(() => s.close());
    const balance = (state: string, value: number) =>
      `paygress_wallet_balance{mint="${s.mint.url}",unit="sat",state="${state}"} ${value}\n`;

    const before = await (await fetch(`${s.base}/metrics`)).text();
    t.ok(
      before.includes(balance('available', 0)) &&
        before.includes(balance('pending', 0)),
      'each configured mint and unit has a balance from the start',
    );

    await send(s, 'forward');
    const token = await mintToken(s.mint.url, 100);
    await send(s, 'ext-authz', { 'x-cashu': token });
    const replay = await send(s, 'nginx', { 'x-cashu': token });
    t.equal(replay.reason, 'PAYGRESS_TOKEN_REPLAYED');
    const res = await fetch(`${s.base}/metrics`);
    const text = await res.text();

    t.equal(res.status, 200);
    t.match(res.headers.get('content-type'), /^text\/plain/);
    t.match(
      text,
      /paygress_decisions_total\{protocol="forward",outcome="deny",reason="PAYGRESS_PAYMENT_REQUIRED"\} 1/,
    );
    t.match(
      text,
      /paygress_decisions_total\{protocol="ext-authz",outcome="allow",reason=""\} 1/,
    );
    t.match(
      text,
      /paygress_mint_requests_total\{mint="http:\/\/127\.0\.0\.1:\d+",operation="swap",outcome="ok"\} 1/,
    );
    t.ok(text.includes(balance('available', 100)), 'the payment is counted');
    t.match(text, /paygress_replay_cache_entries \d+/);
    t.match(text, /paygress_replay_matches_total\{layer="cache"\} 1\n/);
    t.match(text, /paygress_replay_matches_total\{layer="store"\} 0\n/);
    t.match(text, /paygress_redemptions_in_flight 0\n/);
    t.ok(
      text.includes(
        `paygress_mint_circuit_open{mint="${s.mint.url}",operation="swap"} 0\n`,
      ),
      'the swap circuit is closed',
    );
    t.match(text, /paygress_decision_duration_seconds_bucket/);
    t.notMatch(text, /cashu[AB]/, 'no token material in metrics');
  },
);

t.test(
  'after a restart, replays are found in the store and counted there',
  async (t) => {
    const mint = await startDevMint();
    t.teardown(() => mint.close());
    const dataDir = mkdtempSync(join(tmpdir(), 'paygress-test-'));
    t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
    const first = await startStack({ mint, dataDir });
    const token = await mintToken(mint.url, 100);
    t.equal((await send(first, 'forward', { 'X-Cashu': token })).allowed, true);
    await first.close();

    const s = await startStack({ mint, dataDir });
    t.teardown(() => s.close());
    const replay = await send(s, 'forward', { 'X-Cashu': token });
    t.equal(replay.reason, 'PAYGRESS_TOKEN_REPLAYED');
    const text = await (await fetch(`${s.base}/metrics`)).text();
    t.match(text, /paygress_replay_matches_total\{layer="store"\} 1\n/);
    t.match(text, /paygress_replay_matches_total\{layer="cache"\} 0\n/);
  },
);

t.test('/readyz waits for the mint keysets, /healthz does not', async (t) => {
  const mint = await startDevMint();
  t.teardown(() => mint.close());
  await mint.stop();
  const s = await startStack({ mint });
  t.teardown(() => s.close());

  t.equal((await fetch(`${s.base}/healthz`)).status, 200);
  const unready = await fetch(`${s.base}/readyz`);
  t.equal(unready.status, 503, 'not ready while the mint is down');
  t.equal(
    await unready.text(),
    `not ready: keysets not loaded yet from ${mint.url} (the log says why)\n`,
    'and says which mint it waits for',
  );

  await mint.start();
  let ready = 0;
  for (let i = 0; i < 40 && ready !== 200; i++) {
    await new Promise((r) => setTimeout(r, 250));
    ready = (await fetch(`${s.base}/readyz`)).status;
  }
  t.equal(ready, 200, 'ready once the keysets load');
});

t.test('a request in flight at shutdown still gets its answer', async (t) => {
  const s = await startStack();
  t.teardown(() => s.close());
  const token = await mintToken(s.mint.url, 100);
  s.mint.setFault('swap', { kind: 'delay', ms: 500 });

  const inFlight = send(s, 'forward', { 'X-Cashu': token });
  await new Promise((r) => setTimeout(r, 100));
  const closing = s.app.close();
  const out = await inFlight;
  await closing;

  t.equal(out.allowed, true, 'answered, not cut off');
  await t.rejects(fetch(`${s.base}/healthz`), 'no longer accepting');
});

t.test(
  'a reaper sweep under way does not keep the listeners open',
  async (t) => {
    let sweepDone = false;
    const s = await startStack({
      provisioner: {
        ensure: async (grantId) => ({ podName: `pod-${grantId}` }),
        extend: async () => {},
        reap: async () => 0,
        release: async () => {},
        podName: (grantId) => `pod-${grantId}`,
        // A sweep of a slow Kubernetes API, still running at shutdown.
        stop: () =>
          new Promise<void>((resolve) =>
            setTimeout(() => {
              sweepDone = true;
              resolve();
            }, 1500),
          ),
      } as Provisioner & { stop(): Promise<void> },
    });
    t.teardown(() => s.close());

    const closing = s.app.close();
    await new Promise((r) => setTimeout(r, 300));
    await t.rejects(
      fetch(`${s.base}/healthz`),
      'the listeners are closed while the sweep runs',
    );
    t.notOk(sweepDone);
    await closing;
    t.ok(sweepDone, 'and the shutdown still waits for the sweep');
  },
);
