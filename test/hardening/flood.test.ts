/**
 * A flood of garbage between real payments must not make Paygress forget
 * the real ones. Ten thousand tokens, random `cashuB` strings and
 * well-formed tokens from the allowed mint with forged signatures, go in
 * bounded batches against a replay cache of only 100 entries; afterwards
 * every real token is still refused as a replay.
 */
import { randomBytes } from 'node:crypto';
import { Agent, request } from 'node:http';
import t from 'tap';
import fc from 'fast-check';
import { Amount, getEncodedToken, hashToCurve } from '@cashu/cashu-ts';
import type { Proof } from '@cashu/cashu-ts';
import { base64urlString } from '../support/arbitraries.ts';
import { mintToken } from '../support/wallet.ts';
import { PROTOCOLS, send, startStack } from '../support/stack.ts';

const GARBAGE = 10_000;
const ROUNDS = 10;
const BATCH = 50;
// Stop flooding past this, whatever the count, so the file stays bounded.
const TIME_BUDGET_MS = 45_000;
const PRICE = 100;

const stack = await startStack({
  price: PRICE,
  env: { PAYGRESS_REPLAY_CACHE_SIZE: '100' },
});
// fetch costs several times what the request does; a keep-alive agent
// lets the flood measure Paygress rather than the client.
const agent = new Agent({ keepAlive: true, maxSockets: BATCH });
t.teardown(async () => {
  agent.destroy();
  await stack.close();
});

const keysets = (await (
  await fetch(`${stack.mint.url}/v1/keysets`)
).json()) as {
  keysets: { id: string; active: boolean }[];
};
const keysetId = keysets.keysets.find((k) => k.active)!.id;

/** A token the allowed mint never signed: random secrets, valid points. */
function forged(): string {
  const proofs = [64, 32, 4].map((amount) => ({
    id: keysetId,
    amount: Amount.from(amount),
    secret: randomBytes(32).toString('hex'),
    C: hashToCurve(randomBytes(32)).toHex(true),
  }));
  return getEncodedToken({
    mint: stack.mint.url,
    unit: 'sat',
    proofs: proofs as unknown as Proof[],
  });
}

// Header-safe text only: fetch refuses other bytes before sending them.
const randoms = fc.sample(
  base64urlString(600).map((tail) => `cashuB${tail}`),
  GARBAGE,
);

t.test('garbage cannot push real payments out of replay memory', async (t) => {
  const real: string[] = [];
  const reasons = new Map<string, number>();
  const started = Date.now();
  let sent = 0;
  let allowedGarbage = 0;

  for (let round = 0; round < ROUNDS; round++) {
    const token = await mintToken(stack.mint.url, PRICE);
    const protocol = PROTOCOLS[round % PROTOCOLS.length]!;
    const paid = await send(stack, protocol, { 'X-Cashu': token });
    t.equal(paid.allowed, true, `real payment ${round} via ${protocol}`);
    real.push(token);

    const perRound = GARBAGE / ROUNDS;
    for (let i = 0; i < perRound; i += BATCH) {
      if (Date.now() - started > TIME_BUDGET_MS) break;
      const batch = Array.from(
        { length: Math.min(BATCH, perRound - i) },
        (_, j) =>
          // One in twenty is a well-formed forgery. Each reaches the mint and
          // costs tens of ms of curve arithmetic there and here, so their
          // share is what bounds the file's run time.
          (i + j) % 20 === 0 ? forged() : randoms[sent + j]!,
      );
      const outs = await Promise.all(
        batch.map((garbage, j) =>
          authHttp(j % 2 ? '/auth/nginx' : '/auth/forward', garbage),
        ),
      );
      sent += batch.length;
      for (const out of outs) {
        if (out.allowed) allowedGarbage++;
        const key = out.reason ?? `status ${out.status}`;
        reasons.set(key, (reasons.get(key) ?? 0) + 1);
      }
    }
  }
  t.comment(
    `sent ${sent} garbage tokens: ${JSON.stringify(Object.fromEntries(reasons))}`,
  );

  t.equal(allowedGarbage, 0, 'no garbage token was allowed');
  t.ok(sent >= GARBAGE / 2, `the flood ran (${sent} tokens)`);
  for (const reason of reasons.keys()) {
    t.match(
      reason,
      /^PAYGRESS_(TOKEN_MALFORMED|TOKEN_REJECTED|MINT_NOT_ALLOWED|PAYMENT_REQUIRED|TOKEN_TOO_LARGE|UNIT_MISMATCH|INSUFFICIENT_AMOUNT|KEYSET_UNKNOWN)$/,
    );
  }

  for (const [i, token] of real.entries()) {
    for (const protocol of PROTOCOLS) {
      const replay = await send(stack, protocol, { 'X-Cashu': token });
      t.equal(
        replay.reason,
        'PAYGRESS_TOKEN_REPLAYED',
        `real ${i} via ${protocol}`,
      );
    }
  }
  const stored = stack.app.store
    .balances()
    .reduce((s, b) => s + b.available, 0);
  t.equal(stored, PRICE * ROUNDS, 'exactly the real payments are stored');
});

/** One auth request over the keep-alive agent: status and reason. */
function authHttp(
  route: string,
  token: string,
): Promise<{ allowed: boolean; status: number; reason?: string }> {
  const headers = {
    'X-Cashu': token,
    'X-Forwarded-Host': 'app.example',
    'X-Forwarded-Uri': '/premium',
    'X-Original-URL': 'https://app.example/premium',
  };
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: stack.app.httpPort,
        path: route,
        agent,
        headers,
      },
      (res) => {
        res.resume();
        res.on('end', () => {
          const reason = res.headers['x-paygress-reason'];
          resolve({
            allowed: res.statusCode === 200,
            status: res.statusCode ?? 0,
            ...(typeof reason === 'string' ? { reason } : {}),
          });
        });
      },
    );
    req.on('error', reject);
    req.end();
  });
}
