/**
 * The gate works out every refusal's price from `knownKeysets`, once per
 * mint of the route, and the gateway answers that from a map without
 * parsing a URL: for a mint whose keysets it holds, and for one it does
 * not (not fetched yet, or its last fetch failed: a mint that is down),
 * which used to cost a URL parse on every refusal.
 */
import t from 'tap';
import { startDevMint } from '../../src/devmint/index.ts';
import { CashuMintGateway } from '../../src/mint/cashu-gateway.ts';

/** URLs constructed while `work` runs. */
function urlsParsed(work: () => void): number {
  const Original = globalThis.URL;
  let parsed = 0;
  globalThis.URL = class extends Original {
    constructor(...args: ConstructorParameters<typeof URL>) {
      super(...args);
      parsed++;
    }
  } as typeof URL;
  try {
    work();
  } finally {
    globalThis.URL = Original;
  }
  return parsed;
}

t.test('a known mint: no URL parsed per refusal', async (t) => {
  const mint = await startDevMint();
  t.teardown(() => mint.close());
  const gateway = new CashuMintGateway({ mints: [mint.url] });
  t.teardown(() => gateway.close());
  await gateway.keysets(mint.url);
  const parsed = urlsParsed(() => {
    for (let i = 0; i < 1000; i++) gateway.knownKeysets(mint.url);
  });
  t.equal(parsed, 0);
});

t.test(
  'a mint not fetched yet: no URL parsed per refusal either',
  async (t) => {
    // Never asked: like a mint that was down when Paygress started.
    const away = 'http://127.0.0.1:9';
    const gateway = new CashuMintGateway({ mints: [away] });
    t.teardown(() => gateway.close());
    const parsed = urlsParsed(() => {
      for (let i = 0; i < 1000; i++) gateway.knownKeysets(away);
    });
    t.equal(parsed, 0, 'a thousand refusals, no URL parsed');
  },
);
