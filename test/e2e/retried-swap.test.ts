/**
 * A swap delivered to the mint twice: a proxy in front of the mint that
 * retries a POST whose connection was reset (Envoy `retry_on: reset`,
 * nginx `proxy_next_upstream … non_idempotent`) sends it again after the
 * mint ran it, and hands Paygress the mint's refusal of the second. The
 * refusal says nothing of the first: Paygress must find the outputs the
 * first was signed for, and the payer who paid gets the request.
 */
import http from 'node:http';
import t from 'tap';
import { startDevMint } from '../../src/devmint/index.ts';
import type { Fault } from '../../src/devmint/faults.ts';
import { mintToken } from '../support/wallet.ts';
import { send, startStack } from '../support/stack.ts';

const PRICE = 100;
const mint = await startDevMint();

/** How the proxy answers the next swap's second delivery, once. */
let retry: { second?: Fault } | undefined;

function toMint(req: http.IncomingMessage, body: Buffer) {
  return new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
    const target = new URL(req.url!, mint.url);
    const out = http.request(
      target,
      { method: req.method, headers: { 'content-type': 'application/json' } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode!, body: Buffer.concat(chunks) }),
        );
      },
    );
    out.on('error', reject);
    out.end(body);
  });
}

const proxy = http.createServer(async (req, res) => {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const body = Buffer.concat(chunks);
  const twice = retry !== undefined && req.url!.endsWith('/v1/swap');
  const second = retry?.second;
  if (twice) retry = undefined;
  try {
    if (twice) {
      // The mint runs the first and drops the connection unanswered.
      mint.setFault('swap', { kind: 'swap-then-drop' });
      await toMint(req, body).catch(() => undefined);
      mint.setFault('swap', second);
    }
    const answer = await toMint(req, body);
    res.writeHead(answer.status, { 'content-type': 'application/json' });
    res.end(answer.body);
  } catch {
    res.writeHead(502).end();
  } finally {
    if (twice) mint.setFault('swap', undefined);
  }
});
await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
const proxied = `http://127.0.0.1:${(proxy.address() as { port: number }).port}`;

const stack = await startStack({
  price: PRICE,
  mint,
  env: { PAYGRESS_MINTS: proxied },
});
t.teardown(async () => {
  await stack.close();
  proxy.close();
  await mint.close();
});

const held = () =>
  stack.app.store.balances().reduce(
    (sum, b) => ({
      available: sum.available + b.available,
      pending: sum.pending + b.pending,
    }),
    { available: 0, pending: 0 },
  );

let taken = 0;
for (const [name, second] of [
  // The dev mint checks the inputs first: already spent.
  ['spent', undefined],
  // A mint checking outputs first: ours, already signed.
  [
    'outputs signed',
    {
      kind: 'refuse',
      code: 11003,
      detail: 'outputs have already been signed before',
    },
  ],
] as const) {
  t.test(`the second delivery refused as ${name}`, async (t) => {
    const token = await mintToken(proxied, PRICE);
    retry = second === undefined ? {} : { second };
    const out = await send(stack, 'forward', { 'X-Cashu': token });
    t.equal(retry, undefined, 'the swap went to the mint twice');
    t.equal(out.allowed, true, 'the payer who paid gets the request');
    taken += PRICE;
    t.same(held(), { available: taken, pending: 0 }, 'every sat taken held');

    const again = await send(stack, 'forward', { 'X-Cashu': token });
    t.equal(again.reason, 'PAYGRESS_TOKEN_REPLAYED', 'and only once');
  });
}
