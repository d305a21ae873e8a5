/**
 * One JSON line per decision with the request id, protocol, outcome,
 * reason, amount and duration; never a token, whatever protocol carried
 * it, and whether it was paid, replayed or refused.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
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

t.test('routine decisions are counted always, logged with all', async (t) => {
  const mint = await startDevMint();
  t.teardown(() => mint.close());
  const dir = mkdtempSync(join(tmpdir(), 'paygress-log-policy-'));
  const file = join(dir, 'paygress.yaml');
  writeFileSync(
    file,
    'pricing:\n  rules:\n    - name: open\n      match: { path: /open }\n      free: true\n',
  );

  const run = async (policy: string | undefined) => {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        for (const line of String(chunk).split('\n').filter(Boolean)) {
          lines.push(JSON.parse(line) as Record<string, unknown>);
        }
        done();
      },
    });
    const config = loadConfig({
      file,
      env: {
        PAYGRESS_MINTS: mint.url,
        PAYGRESS_HTTP_HOST: '127.0.0.1',
        PAYGRESS_HTTP_PORT: '0',
        PAYGRESS_GRPC_HOST: '127.0.0.1',
        PAYGRESS_GRPC_PORT: '0',
        PAYGRESS_DATA_DIR: join(dir, policy ?? 'default'),
        PAYGRESS_LOG_DECISIONS: policy,
      },
    });
    const app = await startApp({ config, logger: createLogger('info', sink) });
    const base = `http://127.0.0.1:${app.httpPort}`;
    const send = (id: string, uri: string, headers = {}) =>
      fetch(`${base}/auth/forward`, {
        headers: { 'X-Request-ID': id, 'X-Forwarded-Uri': uri, ...headers },
      }).then((res) => res.status);
    t.equal(await send('no-token', '/premium'), 402);
    t.equal(await send('free', '/open'), 200);
    t.equal(
      await send('garbage', '/premium', { 'X-Cashu': 'cashuBnope' }),
      402,
    );
    const metrics = await fetch(`${base}/metrics`).then((res) => res.text());
    await app.close();
    const logged = lines
      .filter((line) => line.msg === 'decision')
      .map((line) => line.reqId);
    return { logged, metrics };
  };

  const standard = await run(undefined);
  t.same(standard.logged, ['garbage'], 'by default only the token is logged');
  t.match(
    standard.metrics,
    /paygress_decisions_total\{protocol="forward",outcome="deny",reason="PAYGRESS_PAYMENT_REQUIRED"\} 1/,
    'the refusal without a token is still counted',
  );
  t.match(
    standard.metrics,
    /paygress_decisions_total\{protocol="forward",outcome="allow",reason=""\} 1/,
    'and so is the free allow',
  );

  const all = await run('all');
  t.same(all.logged, ['no-token', 'free', 'garbage'], 'all logs every one');

  t.throws(
    () => loadConfig({ env: { PAYGRESS_LOG_DECISIONS: 'some' } }),
    /logDecisions.*payments, all/s,
    'an unknown policy is refused with the choices',
  );
});
