/**
 * One JSON line per decision with the request id, protocol, outcome,
 * reason, amount and duration; never a token, whatever protocol carried
 * it, and whether it was paid, replayed or refused.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import t from 'tap';
import { startApp } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { startDevMint } from '../../src/devmint/index.ts';
import { createLogger } from '../../src/logger.ts';
import { mintToken } from '../support/wallet.ts';

t.test('decision lines carry the request id and no token', async (t) => {
  const mint = await startDevMint();
  t.teardown(() => mint.close());
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      done();
    },
  });
  const config = loadConfig({
    env: {
      PAYGRESS_MINTS: mint.url,
      PAYGRESS_HTTP_HOST: '127.0.0.1',
      PAYGRESS_HTTP_PORT: '0',
      PAYGRESS_GRPC_HOST: '127.0.0.1',
      PAYGRESS_GRPC_PORT: '0',
      PAYGRESS_DATA_DIR: mkdtempSync(join(tmpdir(), 'paygress-log-')),
      DEFAULT_PAYMENT_AMOUNT: '100',
    },
  });
  const app = await startApp({ config, logger: createLogger('info', sink) });
  t.teardown(() => app.close());
  const base = `http://127.0.0.1:${app.httpPort}`;

  const token = await mintToken(mint.url, 100);
  const sendAs = (id: string, headers: Record<string, string>) =>
    fetch(`${base}/auth/forward`, {
      headers: {
        'X-Request-ID': id,
        'X-Forwarded-Uri': '/premium',
        ...headers,
      },
    }).then((res) => res.text());
  await sendAs('req-paid', { 'X-Cashu': token });
  await sendAs('req-replay', { Authorization: `Bearer ${token}` });
  await sendAs('req-garbage', { 'X-Cashu': `${token.slice(0, 40)}!!` });
  await new Promise((r) => setTimeout(r, 100));

  const decisions = lines
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((line) => line.msg === 'decision');
  const byId = Object.fromEntries(decisions.map((d) => [d.reqId, d]));
  t.match(byId['req-paid'], {
    protocol: 'forward',
    outcome: 'allow',
    amount: 100,
    path: '/premium',
    durationMs: Number,
  });
  t.match(byId['req-replay'], {
    outcome: 'deny',
    reason: 'PAYGRESS_TOKEN_REPLAYED',
  });
  t.match(byId['req-garbage'], { reason: 'PAYGRESS_TOKEN_MALFORMED' });

  const all = lines.join('\n');
  t.notOk(all.includes(token.slice(6, 46)), 'no token material in any line');
  t.notOk(/cashu[AB][A-Za-z0-9_-]{20}/.test(all), 'nothing token-shaped');
});
