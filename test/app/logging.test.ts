/**
 * One JSON line per decision with the request id, protocol, outcome,
 * reason, amount and duration; never a token, whatever protocol carried
 * it, and whether it was paid, replayed or refused. Decisions that carry
 * no credential and move no money get a line only with `all`.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:http2';
import { Writable } from 'node:stream';
import t from 'tap';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import {
  send as sendVia,
  startStack,
  type StackOptions,
} from '../support/stack.ts';
import { getEncodedToken } from '@cashu/cashu-ts';
import {
  decodeToken,
  mintProofWithSecret,
  mintToken,
} from '../support/wallet.ts';
import { startDevMint } from '../../src/devmint/index.ts';
import { unwritableError } from '../support/unwritable-error.ts';
import { tempDir } from '../support/temp-dir.ts';

/** A Paygress whose log lines are kept, raw and parsed. */
async function loggedStack(options: StackOptions = {}) {
  const raw: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      raw.push(...String(chunk).split('\n').filter(Boolean));
      done();
    },
  });
  const stack = await startStack({
    ...options,
    logger: createLogger('info', sink),
  });
  const decisions = () =>
    raw
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((line) => line.msg === 'decision');
  const send = (id: string, uri: string, headers = {}) =>
    fetch(`${stack.base}/auth/forward`, {
      headers: { 'X-Request-ID': id, 'X-Forwarded-Uri': uri, ...headers },
    }).then(async (res) => {
      await res.text();
      return res.status;
    });
  return { stack, raw, decisions, send };
}

t.test('decision lines carry the request id and no token', async (t) => {
  const { stack, raw, decisions, send } = await loggedStack();
  t.teardown(() => stack.close());

  const token = await mintToken(stack.mint.url, 100);
  await send('req-paid', '/premium', { 'X-Cashu': token });
  await send('req-replay', '/premium', { Authorization: `Bearer ${token}` });
  await send('req-garbage', '/premium', {
    'X-Cashu': `${token.slice(0, 40)}!!`,
  });
  await new Promise((r) => setTimeout(r, 100));

  const byId = Object.fromEntries(decisions().map((d) => [d.reqId, d]));
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

  const all = raw.join('\n');
  t.notOk(all.includes(token.slice(6, 46)), 'no token material in any line');
  t.notOk(/cashu[AB][A-Za-z0-9_-]{20}/.test(all), 'nothing token-shaped');
});

t.test('routine decisions are counted always, logged with all', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'paygress-log-policy-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const configFile = join(dir, 'paygress.yaml');
  writeFileSync(
    configFile,
    'pricing:\n  rules:\n    - name: open\n      match: { path: /open }\n      free: true\n',
  );

  const run = async (env: Record<string, string>) => {
    const { stack, decisions, send } = await loggedStack({ configFile, env });
    t.equal(await send('no-token', '/premium'), 402);
    t.equal(await send('free', '/open'), 200);
    t.equal(
      await send('garbage', '/premium', { 'X-Cashu': 'cashuBnope' }),
      402,
    );
    const metrics = await fetch(`${stack.base}/metrics`).then((r) => r.text());
    await stack.close();
    return { logged: decisions().map((line) => line.reqId), metrics };
  };

  const standard = await run({});
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

  const all = await run({ PAYGRESS_LOG_DECISIONS: 'all' });
  t.same(all.logged, ['no-token', 'free', 'garbage'], 'all logs every one');

  t.throws(
    () => loadConfig({ env: { PAYGRESS_LOG_DECISIONS: 'some' } }),
    /logDecisions.*payments, all/s,
    'an unknown policy is refused with the choices',
  );
});

t.test(
  'one refusal limit for every listener; a payment always has its line',
  async (t) => {
    const { stack, raw, decisions } = await loggedStack({
      env: { PAYGRESS_LOG_REFUSAL_LIMIT: '3' },
    });
    t.teardown(() => stack.close());

    const garbage = { 'X-Cashu': 'cashuBnot-a-token' };
    const started = performance.now();
    const floods = ['forward', 'nginx', 'ext-authz'] as const;
    for (let i = 0; i < 10; i++) {
      for (const protocol of floods) {
        const out = await sendVia(stack, protocol, garbage);
        t.equal(out.reason, 'PAYGRESS_TOKEN_MALFORMED', `${protocol} ${i}`);
      }
    }
    const token = await mintToken(stack.mint.url, 100);
    t.equal(
      (await sendVia(stack, 'nginx', { 'X-Cashu': token })).allowed,
      true,
    );
    const windows = Math.ceil((performance.now() - started) / 1000);
    await new Promise((r) => setTimeout(r, 1200));

    const refusals = decisions().filter((d) => d.outcome === 'deny');
    const held = raw
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((line) => String(line.msg).startsWith('refusals not logged'))
      .map(
        (line) =>
          (line.suppressed as Record<string, number>)[
            'PAYGRESS_TOKEN_MALFORMED'
          ] ?? 0,
      );
    t.ok(
      refusals.length >= 3 && refusals.length <= 3 * windows,
      `${refusals.length} refusal lines in ${windows} window(s) of 3`,
    );
    t.equal(
      refusals.length + held.reduce((a, b) => a + b, 0),
      30,
      'every refusal is either logged or counted in a summary',
    );
    t.equal(
      decisions().filter((d) => d.outcome === 'allow' && d.amount === 100)
        .length,
      1,
      'the payment made during the flood is logged',
    );
  },
);

t.test('a shutdown writes what the refusal limit held back', async (t) => {
  const { stack, raw, decisions, send } = await loggedStack({
    env: { PAYGRESS_LOG_REFUSAL_LIMIT: '3' },
  });
  for (let i = 0; i < 10; i++) {
    t.equal(
      await send(`bad-${i}`, '/premium', { 'X-Cashu': 'cashuBnope' }),
      402,
    );
  }
  await stack.close();
  const held = raw
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((line) => String(line.msg).startsWith('refusals not logged'));
  t.equal(decisions().length, 3);
  t.match(held, [{ suppressed: { PAYGRESS_TOKEN_MALFORMED: 7 } }]);
});

t.test(
  'faults decided while shutting down are in the summary too',
  async (t) => {
    // The mint's deadline outlasts the shutdown's two grace periods, so
    // the swaps are still waiting when the mint gateway closes.
    const { stack, raw, decisions } = await loggedStack({
      env: {
        PAYGRESS_LOG_REFUSAL_LIMIT: '1',
        PAYGRESS_MINT_TIMEOUT_MS: '3500',
      },
    });
    const tokens = await Promise.all(
      [1, 2, 3].map(() => mintToken(stack.mint.url, 100)),
    );
    // The mint holds every swap past the shutdown: closing the mint
    // gateway is what ends them, as faults of ours.
    stack.mint.setFault('swap', { kind: 'delay', ms: 10_000 });
    const cut = tokens.map((token, i) =>
      sendVia(stack, 'forward', {
        'X-Cashu': token,
        'X-Request-ID': `held-${i}`,
      }).catch(() => undefined),
    );
    await new Promise((r) => setTimeout(r, 300));
    await stack.close();
    await Promise.all(cut);

    const faults = decisions().filter((d) => d.level === 50);
    const held = raw
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((line) => String(line.msg).startsWith('refusals not logged'))
      .map((line) => Object.values(line.suppressed as object))
      .flat()
      .reduce((a: number, b) => a + (b as number), 0);
    t.equal(faults.length, 1, 'one fault line within the budget');
    t.equal(faults.length + held, 3, 'the other two counted, not lost');
  },
);

t.test(
  'a fault of ours is logged with its causes and not told to the client',
  async (t) => {
    const broken = new Error('connect ECONNREFUSED 10.96.0.1:443', {
      cause: new Error('socket closed by 10.96.0.1'),
    });
    const { stack, decisions } = await loggedStack({
      provisioner: {
        ensure: () => Promise.reject(broken),
        extend: () => Promise.reject(broken),
        reap: () => Promise.resolve(0),
        release: () => Promise.resolve(),
        podName: (grantId) => `pod-${grantId}`,
      },
    });
    t.teardown(() => stack.close());

    const res = await fetch(`${stack.base}/auth/forward`, {
      headers: {
        'X-Request-ID': 'req-fault',
        'X-Forwarded-Uri': '/premium',
        'X-Cashu': await mintToken(stack.mint.url, 100),
      },
    });
    const body = (await res.json()) as { reason: string; message: string };
    t.equal(res.status, 503);
    t.equal(body.reason, 'PAYGRESS_PROVISION_FAILED');
    t.notOk(body.message.includes('10.96.0.1'), 'the client is not told');
    await new Promise((r) => setTimeout(r, 100));

    const line = decisions().find((d) => d.reqId === 'req-fault');
    t.equal(line?.level, 50, 'logged as an error');
    t.equal(
      line?.detail,
      'the pod could not be provisioned: caused by: connect ECONNREFUSED 10.96.0.1:443: caused by: socket closed by 10.96.0.1',
      'with every cause',
    );
  },
);

t.test("a decision line does not grow with the client's path", async (t) => {
  const { stack, decisions, send } = await loggedStack();
  t.teardown(() => stack.close());
  const long = `/${'p'.repeat(20_000)}`;
  await send('req-long', long, { 'X-Cashu': 'cashuBnot-a-token' });
  await new Promise((r) => setTimeout(r, 100));

  const line = decisions().find((d) => d.reqId === 'req-long');
  t.equal(line?.reason, 'PAYGRESS_TOKEN_MALFORMED');
  t.equal(line?.path, `${long.slice(0, 1024)}…`, 'cut at 1,024 characters');
});

t.test("a mint's error quoting the payer's proofs is not logged", async (t) => {
  const { stack, raw, decisions } = await loggedStack();
  t.teardown(() => stack.close());
  // Secrets of any form: NUT-00 leaves it to the wallet.
  const plain = await mintProofWithSecret(
    stack.mint.url,
    64,
    'Zk3xQ9vLm2Pq7Rt8Yw1Ab4Cd6Ef0Gh5J',
  );
  const quoted = await mintProofWithSecret(
    stack.mint.url,
    32,
    'a "quoted" secret\\ of no form',
  );
  const token = await mintToken(stack.mint.url, 4);
  const { proofs: hex } = await decodeToken(stack.mint.url, token);
  const proofs = [plain, quoted, ...hex];
  const payment = getEncodedToken({
    mint: stack.mint.url,
    unit: 'sat',
    proofs,
  });
  // A mint refusing the swap Paygress built (a fault of ours, so logged
  // with its detail) and quoting what it was sent, bare, as JSON and as
  // JSON inside JSON: the payer's proofs, still good money since nothing
  // was spent.
  for (const detail of [
    `unbalanced ${proofs.map((p) => `${p.secret} ${p.C}`).join(' ')}`,
    `unbalanced ${JSON.stringify(proofs)}`,
    `unbalanced ${JSON.stringify(JSON.stringify(proofs))}`,
  ]) {
    stack.mint.setFault('swap', { kind: 'refuse', code: 11005, detail });
    const res = await fetch(`${stack.base}/auth/forward`, {
      headers: {
        'X-Request-ID': 'req-echo',
        'X-Forwarded-Uri': '/premium',
        'X-Cashu': payment,
      },
    });
    const body = await res.text();
    stack.mint.setFault('swap', undefined);
    await new Promise((r) => setTimeout(r, 100));

    t.equal(res.status, 503);
    t.match(decisions().at(-1), {
      level: 50,
      reqId: 'req-echo',
      reason: 'PAYGRESS_MINT_ERROR',
      // The whole detail, secrets taken out, after the answer's 120 characters.
      detail: /code 11005: unbalanced .*: caused by: unbalanced /,
    });
    const all = `${raw.join('\n')}\n${body}`;
    for (const p of proofs) {
      t.notOk(
        all.includes(p.secret.slice(0, 12)),
        'no part of a secret in the log or the answer',
      );
    }
  }
  const res = await fetch(`${stack.base}/auth/forward`, {
    headers: { 'X-Forwarded-Uri': '/premium', 'X-Cashu': payment },
  });
  await res.text();
  t.equal(res.status, 200, 'the token was still good, and pays');
});

/** A logger at `info` whose writes are kept, one string each. */
function keptLogger() {
  const raw: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      raw.push(String(chunk));
      done();
    },
  });
  return { logger: createLogger('info', sink), raw };
}

t.test(
  'an error logged with a token in its text has it taken out',
  async (t) => {
    const { logger, raw } = keptLogger();
    const mint = await startDevMint();
    t.teardown(() => mint.close());
    const token = await mintToken(mint.url, 8);
    const secret = 'ab'.repeat(32);
    const err = new Error(`cannot read "${token}"`, {
      cause: new SyntaxError(`bad secret ${secret}`),
    });
    logger.error({ err }, 'failed');
    logger.error({ err: `plain text ${token}` }, 'failed as text');
    const notAnError = { note: token };
    logger.error({ err: notAnError }, 'not an error');
    // What hangs on an error, however deep, is written redacted and left
    // as it was.
    const request = { body: { inputs: [{ secret, amount: 1 }] } };
    let nested: Record<string, unknown> = { token };
    for (let i = 0; i < 10; i++) nested = { nested };
    const deep = Object.assign(new Error('swap failed'), { request, nested });
    logger.error({ err: deep }, 'with fields');
    logger.flush();
    await new Promise((r) => setTimeout(r, 50));

    const [error, text, plain, fields] = raw.map(
      (l) => JSON.parse(l) as Record<string, any>,
    );
    t.match(error!.err, {
      type: 'Error',
      message: 'cannot read "[redacted]"',
      stack: /cannot read "\[redacted\]"/,
    });
    t.equal(text!.err, 'plain text [redacted]');
    t.notOk(raw.join('').includes(secret), 'nor the cause');
    t.notOk(raw.join('').includes(token.slice(0, 20)), 'however deep');
    t.equal(notAnError.note, token, "a caller's own object is left alone");
    t.same(plain!.err, { note: '[redacted]' }, 'a thrown non-error too');
    t.same(fields!.err.request, {
      body: { inputs: [{ secret: '[redacted]', amount: 1 }] },
    });
    t.equal(request.body.inputs[0]!.secret, secret, 'the error is unchanged');
  },
);

t.test('an error that cannot be read is logged as such', async (t) => {
  const { logger, raw } = keptLogger();
  t.doesNotThrow(() =>
    logger.error({ err: unwritableError('lost'), reqId: 'r-9' }, 'failed'),
  );
  logger.flush();
  await new Promise((r) => setTimeout(r, 50));
  t.match(JSON.parse(raw[0]!), {
    msg: 'failed',
    reqId: 'r-9',
    err: { type: 'Error', message: '[the error could not be read]' },
  });
});

t.test('a data directory others may write is warned about', async (t) => {
  const lines = async (mode: number) => {
    const dataDir = tempDir('paygress-dirmode-');
    chmodSync(dataDir, mode);
    const { stack, raw } = await loggedStack({ dataDir });
    await stack.close();
    return raw
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((line) => /^the data directory/.test(String(line.msg)));
  };

  const open = await lines(0o757);
  t.equal(open.length, 1, 'one warning at start');
  t.match(open[0], {
    level: 40,
    mode: '0757',
    msg: /^the data directory is writable by every user \(mode 0757\): Paygress's own files in it are 0600/,
  });
  // A Kubernetes volume with fsGroup: group-writable, listable by others.
  const listed = await lines(0o2775);
  t.equal(listed.length, 1);
  t.match(listed[0], {
    level: 30,
    mode: '2775',
    msg: /^the data directory may be listed by other users/,
  });
  t.same(await lines(0o700), [], 'nothing for an owner-only directory');
});

t.test(
  'a header grpc-js cannot take is logged without its value',
  async (t) => {
    const { stack, raw } = await loggedStack();
    t.teardown(() => stack.close());
    const token = await mintToken(stack.mint.url, 8);
    const grant = `pgr1.${'eyJrIjoi'.repeat(4)}.${'c2ln'.repeat(8)}`;
    // A byte past ASCII: grpc-js refuses the value and logs why, quoting it.
    const session = connect(`http://127.0.0.1:${stack.app.grpcPort}`);
    t.teardown(() => session.close());
    for (const [name, value] of [
      ['authorization', `Bearer ${token}\u00e9`],
      ['authorization', `Bearer ${grant}\u00e9`],
      ['x-cashu', `${token}\u00e9`],
    ] as const) {
      const call = session.request({
        ':method': 'POST',
        ':path': '/envoy.service.auth.v3.Authorization/Check',
        'content-type': 'application/grpc',
        te: 'trailers',
        [name]: value,
      });
      call.end(Buffer.alloc(5));
      call.resume();
      await new Promise((resolve) => call.once('close', resolve));
    }
    await new Promise((r) => setTimeout(r, 100));

    const fromGrpc = raw.filter((line) => line.includes('"source":"grpc-js"'));
    t.ok(fromGrpc.length >= 3, 'grpc-js said why, once a header');
    const all = raw.join('\n');
    t.notOk(all.includes(token.slice(0, 24)), 'no token');
    t.notOk(all.includes(grant.slice(0, 24)), 'no grant');
  },
);
