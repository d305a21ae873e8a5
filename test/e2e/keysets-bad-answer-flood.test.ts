/**
 * A mint whose /v1/keysets answer Paygress cannot use (here a fee of 1.5
 * ppk, which cashu-ts refuses) answers quickly and with HTTP 200, so the
 * circuit breaker never opens. The failed fetch is kept for the refresh
 * floor (a second), so tokens naming that mint cost at most one
 * /v1/keysets request a second, not one each (as they did when a failed
 * list was forgotten at once).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { getEncodedToken } from '@cashu/cashu-ts';
import { startDevMint } from '../../src/devmint/index.ts';
import { send, startStack } from '../support/stack.ts';

const REQUESTS = 50;

t.test(
  'tokens naming a mint with an unusable keyset list do not each cost a mint request',
  async (t) => {
    let keysetRequests = 0;
    const odd = createServer((req, res) => {
      if (req.url === '/v1/keysets') keysetRequests++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          keysets: [
            {
              id: '00ffd48b8f5ecf80',
              unit: 'sat',
              active: true,
              input_fee_ppk: 1.5,
            },
          ],
        }),
      );
    });
    await new Promise<void>((resolve) => odd.listen(0, '127.0.0.1', resolve));
    t.teardown(
      () => new Promise<void>((resolve) => odd.close(() => resolve())),
    );
    const oddUrl = `http://127.0.0.1:${(odd.address() as AddressInfo).port}`;

    const good = await startDevMint();
    t.teardown(() => good.close());
    const stack = await startStack({
      mint: good,
      env: { PAYGRESS_MINTS: `${good.url};${oddUrl}` },
    });
    t.teardown(() => stack.close());

    const token = getEncodedToken({
      mint: oddUrl,
      unit: 'sat',
      proofs: [
        {
          id: '00ffd48b8f5ecf80',
          amount: 128,
          secret: 'a'.repeat(64),
          C: `02${'11'.repeat(32)}`,
        },
      ] as never,
    });
    const before = keysetRequests;
    const started = performance.now();
    for (let i = 0; i < REQUESTS; i++) {
      const refused = await send(stack, 'forward', { 'X-Cashu': token });
      t.equal(refused.allowed, false);
    }
    const seconds = (performance.now() - started) / 1000;
    const asked = keysetRequests - before;
    t.ok(
      asked <= Math.ceil(seconds) + 1,
      `${asked} keyset requests for ${REQUESTS} requests in ${seconds.toFixed(2)} s`,
    );
  },
);
