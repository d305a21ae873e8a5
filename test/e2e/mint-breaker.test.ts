/**
 * A dead mint must not make every request wait: after repeated failures
 * Paygress stops contacting it, refuses at once as its own fault, and lets
 * one probe through after a cooldown to notice it is back.
 */
import t from 'tap';
import { mintToken } from '../support/wallet.ts';
import { send, startStack } from '../support/stack.ts';

t.test(
  'a hanging mint trips the breaker; the payer keeps the token',
  async (t) => {
    const s = await startStack();
    t.teardown(() => s.close());
    const tokens = await Promise.all(
      Array.from({ length: 7 }, () => mintToken(s.mint.url, 100)),
    );
    const sentToMint = () =>
    (['swap', 'checkstate', 'keys', 'keysets', 'info', 'restore'] as const)
      .map((route) => s.mint.requests(route))
      .reduce((a, b) => a + b, 0);
  const warm = await send(s, 'forward', { 'X-Cashu': tokens[6]! });
    t.equal(warm.allowed, true, 'the mint works before it hangs');

    s.mint.setFault('*', { kind: 'hang' });
    // Five failures open the circuit (each waits the 2 s mint timeout).
    const first = await Promise.all(
      tokens
        .slice(0, 5)
        .map((token) => send(s, 'forward', { 'X-Cashu': token })),
    );
    for (const out of first) t.equal(out.reason, 'PAYGRESS_MINT_UNAVAILABLE');

    const sent = sentToMint();
    const fast = await send(s, 'forward', { 'X-Cashu': tokens[5]! });
    t.equal(fast.reason, 'PAYGRESS_MINT_UNAVAILABLE');
    t.match(JSON.parse(fast.body!).message, /circuit open/);
    t.equal(sentToMint(), sent, 'nothing was sent to the dead mint');

    s.mint.setFault('*', undefined);
    let out = fast;
    for (let i = 0; i < 30 && !out.allowed; i++) {
      await new Promise((r) => setTimeout(r, 200));
      out = await send(s, 'forward', { 'X-Cashu': tokens[5]! });
    }
    t.equal(out.allowed, true, 'the refused token works once the mint is back');
  },
);
