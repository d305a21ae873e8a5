/**
 * A forced keyset refresh asked for within a second of the last one (a
 * token naming a keyset the gateway has not seen: one the mint just
 * rotated to, or a made-up one) waits for the refresh due at the end of
 * that second. It must then run, whatever the clocks say: it used to ask
 * again, and a timer waking a little early, or a wall clock stepped back,
 * made it wait on its own answer for ever.
 */
import t from 'tap';
import { startDevMint } from '../../src/devmint/index.ts';
import { CashuMintGateway } from '../../src/mint/cashu-gateway.ts';

const ANSWER_WITHIN_MS = 4000;

async function answered(work: Promise<unknown>): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    work.then(() => 'answered'),
    new Promise<string>((resolve) => {
      timer = setTimeout(() => resolve('hung'), ANSWER_WITHIN_MS);
    }),
  ]);
  clearTimeout(timer);
  return outcome;
}

t.test('the delayed refresh answers when the timer wakes early', async (t) => {
  const mint = await startDevMint();
  t.teardown(() => mint.close());
  const gateway = new CashuMintGateway({ mints: [mint.url] });
  t.teardown(() => gateway.close());
  await gateway.keysets(mint.url, true);

  // The monotonic clock stands still: when the wait is over, the entry
  // still looks younger than the floor, as after an early timer.
  const now = performance.now.bind(performance);
  const frozen = now();
  performance.now = () => frozen;
  t.teardown(() => {
    performance.now = now;
  });
  const outcome = await answered(gateway.keysets(mint.url, true));
  performance.now = now;
  t.equal(outcome, 'answered');
});

t.test(
  'the delayed refresh answers when the wall clock is stepped back',
  async (t) => {
    const mint = await startDevMint();
    t.teardown(() => mint.close());
    const gateway = new CashuMintGateway({ mints: [mint.url] });
    t.teardown(() => gateway.close());
    await gateway.keysets(mint.url, true);

    const second = gateway.keysets(mint.url, true);
    // An NTP correction of a few milliseconds while the refresh waits.
    const realNow = Date.now;
    const started = realNow();
    Date.now = () => started - 5 + (realNow() - started);
    t.teardown(() => {
      Date.now = realNow;
    });
    const outcome = await answered(second);
    Date.now = realNow;
    t.equal(outcome, 'answered');
  },
);

t.test('callers within the floor share one refresh', async (t) => {
  const mint = await startDevMint();
  t.teardown(() => mint.close());
  let keysetRequests = 0;
  const gateway = new CashuMintGateway({
    mints: [mint.url],
    onRequest: (event) => {
      if (event.operation === 'keysets') keysetRequests++;
    },
  });
  t.teardown(() => gateway.close());
  await gateway.keysets(mint.url, true);
  const before = keysetRequests;
  const waiting = Array.from({ length: 20 }, () =>
    gateway.keysets(mint.url, true),
  );
  const lists = await Promise.all(waiting);
  t.equal(keysetRequests - before, 1, 'one request to the mint for twenty');
  t.ok(lists.every((list) => list === lists[0]));
});

t.test('knownKeysets: the last list fetched, without asking', async (t) => {
  const mint = await startDevMint();
  t.teardown(() => mint.close());
  const gateway = new CashuMintGateway({ mints: [mint.url] });
  t.teardown(() => gateway.close());
  t.equal(gateway.knownKeysets(mint.url), undefined, 'nothing before');
  const fetched = await gateway.keysets(mint.url);
  t.equal(gateway.knownKeysets(mint.url), fetched);
  t.equal(gateway.knownKeysets(`${mint.url}/`), fetched, 'any spelling');
});

t.test(
  'a periodic refresh that fails answers with the last list; a forced one fails',
  async (t) => {
    const mint = await startDevMint();
    t.teardown(() => mint.close());
    const gateway = new CashuMintGateway({
      mints: [mint.url],
      keysetTtlMs: 50,
    });
    t.teardown(() => gateway.close());
    const first = await gateway.keysets(mint.url);
    t.ok(first.length > 0);

    // The mint's /v1/keysets fails (a proxy before it, say) while its
    // swaps may still work: tokens of known keysets must not be refused.
    mint.setFault('keysets', { kind: 'status', status: 502 });
    await new Promise((resolve) => setTimeout(resolve, 80));
    t.same(
      await gateway.keysets(mint.url),
      first,
      'the last list, past its age',
    );
    await new Promise((resolve) => setTimeout(resolve, 1100));
    t.same(await gateway.keysets(mint.url), first, 'and again a second on');
    await t.rejects(
      gateway.keysets(mint.url, true),
      { code: 'PAYGRESS_MINT_ERROR' },
      'a forced refresh (a keyset not in the list) fails',
    );
    mint.setFault('keysets', undefined);
  },
);
