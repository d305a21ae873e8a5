/**
 * A dead mint must not make every request wait: after repeated failures
 * Paygress stops contacting it, refuses at once as its own fault, and lets
 * one probe through after a cooldown to notice it is back.
 */
import t from 'tap';
import { mintToken } from '../support/wallet.ts';
import { send, startStack } from '../support/stack.ts';

t.test(
  'a dead mint trips the breaker; the payer keeps the token',
  async (t) => {
    const s = await startStack();
    t.teardown(() => s.close());
    const tokens = await Promise.all(
      Array.from({ length: 5 }, () => mintToken(s.mint.url, 100)),
    );
    const warm = await send(s, 'forward', { 'X-Cashu': tokens[4]! });
    t.equal(warm.allowed, true, 'the mint works before it dies');

    await s.mint.stop();
    // Three refused connections in a row open the circuit.
    for (const token of tokens.slice(0, 3)) {
      const out = await send(s, 'forward', { 'X-Cashu': token });
      t.match(JSON.parse(out.body!).message, /unreachable \(ECONNREFUSED\)/);
    }

    const fast = await send(s, 'nginx', { 'X-Cashu': tokens[3]! });
    t.equal(fast.reason, 'PAYGRESS_MINT_UNAVAILABLE');
    const swapCircuit = `paygress_mint_circuit_open{mint="${s.mint.url}",operation="swap"}`;
    const metrics = async () => (await fetch(`${s.base}/metrics`)).text();
    t.ok(
      (await metrics()).includes(`${swapCircuit} 1\n`),
      'the open circuit shows in the metrics',
    );
    const swapsCounted = (text: string) =>
      text
        .split('\n')
        .filter((l) =>
          l.startsWith(
            `paygress_mint_requests_total{mint="${s.mint.url}",operation="swap"`,
          ),
        )
        .reduce((n, l) => n + Number(l.split(' ').at(-1)), 0);
    const counted = swapsCounted(await metrics());
    const viaForward = await send(s, 'forward', { 'X-Cashu': tokens[3]! });
    t.equal(
      swapsCounted(await metrics()),
      counted,
      'a refusal by the open circuit is no mint request',
    );
    t.match(
      JSON.parse(viaForward.body!).message,
      /circuit open/,
      'refused without trying to connect',
    );

    await s.mint.start();
    let out = viaForward;
    for (let i = 0; i < 40 && !out.allowed; i++) {
      await new Promise((r) => setTimeout(r, 250));
      out = await send(s, 'forward', { 'X-Cashu': tokens[3]! });
    }
    t.equal(out.allowed, true, 'a probe finds the mint back; the token works');
    t.ok((await metrics()).includes(`${swapCircuit} 0\n`), 'and closed again');
    for (const token of tokens.slice(0, 3)) {
      const retry = await send(s, 'forward', { 'X-Cashu': token });
      t.equal(retry.allowed, true, 'every refused token kept its value');
    }
  },
);

t.test(
  'a hanging swap trips its breaker without waiting each time',
  async (t) => {
    const s = await startStack();
    t.teardown(() => s.close());
    const tokens = await Promise.all(
      Array.from({ length: 5 }, () => mintToken(s.mint.url, 100)),
    );
    await send(s, 'forward', { 'X-Cashu': tokens[4]! });

    s.mint.setFault('swap', { kind: 'hang' });
    await Promise.all(
      tokens
        .slice(0, 3)
        .map((token) => send(s, 'forward', { 'X-Cashu': token })),
    );
    const swaps = s.mint.requests('swap');
    const out = await send(s, 'forward', { 'X-Cashu': tokens[3]! });
    s.mint.setFault('swap', undefined);

    t.equal(out.reason, 'PAYGRESS_MINT_UNAVAILABLE');
    t.match(JSON.parse(out.body!).message, /circuit open/);
    t.equal(s.mint.requests('swap'), swaps, 'the swap was not sent');
  },
);
