/**
 * The main promise of Paygress, through each of its three protocols, with
 * a real dev mint and the real cashu-ts wallet: payment required, paid,
 * verified, and refused on replay; foreign mints never contacted; garbage
 * and small tokens refused; a dead mint fails closed; one token buys one
 * request even when sent 25 times at once.
 */
import { createServer, type Server } from 'node:net';
import t from 'tap';
import { decodePaymentRequest, getEncodedToken } from '@cashu/cashu-ts';
import { startDevMint } from '../../src/devmint/index.ts';
import { mintProofs, mintToken } from '../support/wallet.ts';
import { PROTOCOLS, send, startStack } from '../support/stack.ts';

const stack = await startStack({ price: 100 });
t.teardown(() => stack.close());

const denyStatus = { forward: 402, nginx: 401, 'ext-authz': 402 } as const;
/** NUT-24: a token of another mint or unit, or worth too little, is a 400. */
const badPaymentStatus = {
  forward: 400,
  nginx: 401,
  'ext-authz': 400,
} as const;

for (const protocol of PROTOCOLS) {
  t.test(`${protocol}: no token asks for payment`, async (t) => {
    const out = await send(stack, protocol);
    t.equal(out.allowed, false);
    t.equal(out.status, denyStatus[protocol]);
    t.equal(out.reason, 'PAYGRESS_PAYMENT_REQUIRED');
    t.ok(out.paymentRequest, 'offers a NUT-18 payment request');

    const request = decodePaymentRequest(out.paymentRequest!);
    t.equal(request.amount?.toNumber(), 100);
    t.equal(request.unit, 'sat');
    t.same(request.mints, [stack.mint.url]);
  });

  t.test(
    `${protocol}: a valid token is allowed, then refused as a replay`,
    async (t) => {
      const token = await mintToken(stack.mint.url, 100);

      const paid = await send(stack, protocol, { 'X-Cashu': token });
      t.equal(paid.allowed, true, 'allowed');
      t.equal(paid.headers['x-payment-verified'], 'true');
      t.equal(paid.headers['x-payment-amount'], '100');
      t.equal(paid.headers['x-payment-unit'], 'sat');
      t.match(paid.headers['x-user-id'], /^[A-Za-z0-9_-]{22}$/);

      const replay = await send(stack, protocol, {
        Authorization: `Bearer ${token}`,
      });
      t.equal(replay.allowed, false);
      t.equal(replay.reason, 'PAYGRESS_TOKEN_REPLAYED');
      t.equal(replay.status, denyStatus[protocol]);
    },
  );

  t.test(
    `${protocol}: a token from another mint is refused unseen`,
    async (t) => {
      const { server, connections } = await listeningRecorder();
      t.teardown(() => new Promise<void>((r) => server.close(() => r())));
      const foreign = await startDevMint();
      t.teardown(() => foreign.close());

      const proofs = await mintProofs(foreign.url, 100);
      const port = (server.address() as { port: number }).port;
      const token = getEncodedToken({
        mint: `http://127.0.0.1:${port}`,
        unit: 'sat',
        proofs,
      });

      const out = await send(stack, protocol, { 'X-Cashu': token });
      t.equal(out.reason, 'PAYGRESS_MINT_NOT_ALLOWED');
      t.equal(out.status, badPaymentStatus[protocol]);
      t.ok(out.paymentRequest, 'with the payment request to follow');
      if (protocol !== 'nginx') t.match(out.body, /"error":"bad_payment"/);
      t.equal(connections(), 0, 'no connection reached the named mint');
    },
  );

  t.test(`${protocol}: garbage is refused as malformed`, async (t) => {
    for (const garbage of [
      'cashuBnotatoken',
      'cashuA!!!',
      'cashuB' + 'A'.repeat(50),
    ]) {
      const out = await send(stack, protocol, { 'X-Cashu': garbage });
      t.equal(out.reason, 'PAYGRESS_TOKEN_MALFORMED', garbage.slice(0, 12));
      t.equal(out.status, denyStatus[protocol]);
    }
  });

  t.test(
    `${protocol}: too small a token is refused with the price`,
    async (t) => {
      const token = await mintToken(stack.mint.url, 64);
      const out = await send(stack, protocol, { 'X-Cashu': token });
      t.equal(out.reason, 'PAYGRESS_INSUFFICIENT_AMOUNT');
      t.equal(out.status, badPaymentStatus[protocol]);
      t.equal(out.headers['x-payment-amount'], '100');
      t.ok(out.paymentRequest);
    },
  );

  t.test(`${protocol}: a token of another unit is refused`, async (t) => {
    const proofs = await mintProofs(stack.mint.url, 128);
    const token = getEncodedToken({
      mint: stack.mint.url,
      unit: 'usd',
      proofs,
    });
    const out = await send(stack, protocol, { 'X-Cashu': token });
    t.equal(out.reason, 'PAYGRESS_UNIT_MISMATCH');
    t.equal(out.status, badPaymentStatus[protocol]);
    if (protocol !== 'nginx') t.match(out.body, /"error":"bad_payment"/);
    t.ok(out.paymentRequest);
  });

  t.test(
    `${protocol}: with the mint down the refusal is our fault`,
    async (t) => {
      const token = await mintToken(stack.mint.url, 100);
      await stack.mint.stop();
      const out = await send(stack, protocol, { 'X-Cashu': token });
      await stack.mint.start();

      t.equal(out.allowed, false);
      t.equal(out.reason, 'PAYGRESS_MINT_UNAVAILABLE');
      if (protocol === 'ext-authz') t.equal(out.rpcError, 14, 'UNAVAILABLE');
      else t.equal(out.status, 503);

      const retry = await send(stack, protocol, { 'X-Cashu': token });
      t.equal(retry.allowed, true, 'the payer can retry the same token');
    },
  );

  t.test(
    `${protocol}: 25 concurrent requests with one token, one allow`,
    async (t) => {
      const token = await mintToken(stack.mint.url, 100);
      const outs = await Promise.all(
        Array.from({ length: 25 }, () =>
          send(stack, protocol, { 'X-Cashu': token }),
        ),
      );
      t.equal(outs.filter((o) => o.allowed).length, 1);
      for (const out of outs.filter((o) => !o.allowed)) {
        t.match(out.reason, /^PAYGRESS_TOKEN_(REPLAYED|PENDING)$/);
      }
    },
  );
}

t.test(
  'token forms: cashuA, cashu: prefix, whitespace, bearer case',
  async (t) => {
    const forms = [
      await mintToken(stack.mint.url, 100, { version: 3 }),
      'cashu:' + (await mintToken(stack.mint.url, 100)),
      '  ' + (await mintToken(stack.mint.url, 100)) + '  ',
    ];
    for (const token of forms) {
      const out = await send(stack, 'forward', { 'X-Cashu': token });
      t.equal(out.allowed, true, token.trim().slice(0, 8));
    }
    const bearer = await mintToken(stack.mint.url, 100);
    const out = await send(stack, 'forward', {
      Authorization: `bEaReR ${bearer}`,
    });
    t.equal(out.allowed, true, 'bearer scheme matched without regard to case');
  },
);

t.test('a token over the size limit is refused before decoding', async (t) => {
  const out = await send(stack, 'forward', {
    'X-Cashu': 'cashuB' + 'A'.repeat(20000),
  });
  t.equal(out.reason, 'PAYGRESS_TOKEN_TOO_LARGE');
});

t.test('a token holding one proof twice is a replay', async (t) => {
  const proofs = await mintProofs(stack.mint.url, 128);
  const token = getEncodedToken({
    mint: stack.mint.url,
    unit: 'sat',
    proofs: [proofs[0]!, proofs[0]!],
  });
  const swaps = stack.mint.requests('swap');
  const out = await send(stack, 'forward', { 'X-Cashu': token });
  t.equal(out.reason, 'PAYGRESS_TOKEN_REPLAYED');
  t.equal(stack.mint.requests('swap'), swaps, 'refused before any swap');
});

t.test('the paid value is stored before the allow', async (t) => {
  const before = total(stack.app.store.balances());
  const token = await mintToken(stack.mint.url, 100);
  const out = await send(stack, 'forward', { 'X-Cashu': token });
  t.equal(out.allowed, true);
  t.equal(total(stack.app.store.balances()) - before, 100);
});

function total(balances: { available: number }[]): number {
  return balances.reduce((sum, b) => sum + b.available, 0);
}

async function listeningRecorder(): Promise<{
  server: Server;
  connections: () => number;
}> {
  let count = 0;
  const server = createServer((socket) => {
    count++;
    socket.destroy();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { server, connections: () => count };
}
