/**
 * The refusal limit of the decision log: a flood of refusals writes at
 * most the limit's lines a window and one summary counting the rest by
 * reason, while every decision that moves money keeps its line.
 */
import t from 'tap';
import type { Decision } from '../../src/core/model.ts';
import { createDecisionLog } from '../../src/protocols/decision-log.ts';
import { authRequest } from '../support/auth-request.ts';
import { keptLog } from '../support/stack.ts';

const refusal = (
  reason: 'PAYGRESS_TOKEN_MALFORMED' | 'PAYGRESS_TOKEN_REPLAYED',
): Decision => ({
  kind: 'deny',
  reason,
  message: 'no',
  fault: 'payer',
});
const mintDown: Decision = {
  kind: 'deny',
  reason: 'PAYGRESS_MINT_UNAVAILABLE',
  message: 'try again',
  fault: 'ours',
};
const paid: Decision = {
  kind: 'allow',
  amount: 100,
  unit: 'sat',
  upstreamHeaders: {},
  clientHeaders: {},
  redemptionId: 'r1',
};
const refunded: Decision = {
  kind: 'deny',
  reason: 'PAYGRESS_PROVISION_FAILED',
  message: 'refunded',
  fault: 'ours',
  refund: 'cashuBrefund',
};
const noToken: Decision = {
  kind: 'deny',
  reason: 'PAYGRESS_PAYMENT_REQUIRED',
  message: 'pay',
  fault: 'payer',
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const decisionIds = (lines: Record<string, unknown>[]) =>
  lines.filter((l) => l.msg === 'decision').map((l) => l.reqId);
const summaries = (lines: Record<string, unknown>[]) =>
  lines.filter((l) => l.msg !== 'decision');

t.test('a flood of refusals is held to the limit and summarised', async (t) => {
  const { logger, lines } = keptLog();
  const log = createDecisionLog(logger, { refusalLimit: 5, windowMs: 300 });

  for (let i = 0; i < 40; i++)
    log(authRequest(`bad-${i}`), refusal('PAYGRESS_TOKEN_MALFORMED'), 1);
  for (let i = 0; i < 10; i++)
    log(authRequest(`replay-${i}`), refusal('PAYGRESS_TOKEN_REPLAYED'), 1);
  log(authRequest('down'), mintDown, 1);
  log(authRequest('paid'), paid, 1);
  log(authRequest('refunded'), refunded, 1);
  log(authRequest('no-token'), noToken, 1);

  t.same(
    decisionIds(lines),
    ['bad-0', 'bad-1', 'bad-2', 'bad-3', 'bad-4', 'down', 'paid', 'refunded'],
    'the first five refusals, our fault on its own budget, what moves money',
  );
  t.same(summaries(lines), [], 'the summary waits for the window to end');

  await sleep(400);
  t.match(summaries(lines), [
    {
      level: 40,
      msg: /^refusals not logged: over logRefusalLimit/,
      windowMs: 300,
      suppressed: {
        PAYGRESS_TOKEN_MALFORMED: 35,
        PAYGRESS_TOKEN_REPLAYED: 10,
      },
    },
  ]);
  t.equal(summaries(lines).length, 1, 'one summary for the window');
  t.equal(
    Object.keys(summaries(lines)[0]!.suppressed as object).length,
    2,
    'the routine refusal without a token was never counted',
  );

  log(authRequest('next-window'), refusal('PAYGRESS_TOKEN_REPLAYED'), 1);
  t.equal(decisionIds(lines).at(-1), 'next-window', 'a new window logs again');
  await sleep(400);
  t.equal(summaries(lines).length, 1, 'nothing held back, nothing summarised');
});

t.test('a limit of 0 logs every refusal', async (t) => {
  const { logger, lines } = keptLog();
  const log = createDecisionLog(logger, { refusalLimit: 0, policy: 'all' });
  for (let i = 0; i < 500; i++)
    log(authRequest(`r${i}`), refusal('PAYGRESS_TOKEN_MALFORMED'), 1);
  log(authRequest('no-token'), noToken, 1);
  t.equal(decisionIds(lines).length, 501);
});

t.test('with policy all, refusals without a token count too', async (t) => {
  const { logger, lines } = keptLog();
  const log = createDecisionLog(logger, {
    policy: 'all',
    refusalLimit: 2,
    windowMs: 200,
  });
  for (let i = 0; i < 5; i++) log(authRequest(`n${i}`), noToken, 1);
  log(authRequest('free'), { ...paid, amount: 0, redemptionId: undefined }, 1);
  t.same(decisionIds(lines), ['n0', 'n1', 'free'], 'allows are never held');
  await sleep(300);
  t.match(summaries(lines), [{ suppressed: { PAYGRESS_PAYMENT_REQUIRED: 3 } }]);
});

t.test(
  'faults of ours have a budget of their own, summarised as errors',
  async (t) => {
    const { logger, lines } = keptLog();
    const log = createDecisionLog(logger, { refusalLimit: 2, windowMs: 200 });
    for (let i = 0; i < 100; i++)
      log(authRequest(`bad-${i}`), refusal('PAYGRESS_TOKEN_MALFORMED'), 1);
    for (let i = 0; i < 5; i++) log(authRequest(`down-${i}`), mintDown, 1);
    t.same(decisionIds(lines), ['bad-0', 'bad-1', 'down-0', 'down-1']);
    await sleep(300);
    const byLevel = Object.fromEntries(
      summaries(lines).map((l) => [l.level, l.suppressed]),
    );
    t.same(byLevel, {
      40: { PAYGRESS_TOKEN_MALFORMED: 98 },
      50: { PAYGRESS_MINT_UNAVAILABLE: 3 },
    });
  },
);

t.test('only lines the level writes count against the limit', async (t) => {
  const { logger, lines } = keptLog('error');
  const log = createDecisionLog(logger, { refusalLimit: 2, windowMs: 200 });
  for (let i = 0; i < 100; i++)
    log(authRequest(`bad-${i}`), refusal('PAYGRESS_TOKEN_MALFORMED'), 1);
  for (let i = 0; i < 3; i++) log(authRequest(`down-${i}`), mintDown, 1);
  t.same(decisionIds(lines), ['down-0', 'down-1'], 'info lines never counted');
  await sleep(300);
  t.match(summaries(lines), [
    { level: 50, suppressed: { PAYGRESS_MINT_UNAVAILABLE: 1 } },
  ]);
  t.equal(summaries(lines).length, 1, 'nothing said of lines never written');
});

t.test('flush writes what is held back at once', async (t) => {
  const { logger, lines } = keptLog();
  const log = createDecisionLog(logger, { refusalLimit: 1, windowMs: 60_000 });
  for (let i = 0; i < 4; i++)
    log(authRequest(`bad-${i}`), refusal('PAYGRESS_TOKEN_MALFORMED'), 1);
  log.flush();
  t.match(summaries(lines), [{ suppressed: { PAYGRESS_TOKEN_MALFORMED: 3 } }]);
  log.flush();
  t.equal(summaries(lines).length, 1, 'nothing twice');
});

t.test('using up a credit is logged, a plain grant is not', async (t) => {
  const { logger, lines } = keptLog();
  const log = createDecisionLog(logger);
  const free = { ...paid, amount: 0, redemptionId: undefined };
  log(authRequest('grant'), free, 1);
  log(authRequest('credit'), { ...free, creditId: 'c1' }, 1);
  t.same(decisionIds(lines), ['credit']);
});

t.test('a steady flood gives one summary a window', async (t) => {
  const { logger, lines } = keptLog();
  const log = createDecisionLog(logger, { refusalLimit: 5, windowMs: 100 });
  const started = performance.now();
  let sent = 0;
  while (performance.now() - started < 450) {
    log(authRequest(`bad-${sent}`), refusal('PAYGRESS_TOKEN_MALFORMED'), 1);
    sent += 1;
    await sleep(1);
  }
  await sleep(150);
  const held = summaries(lines).map(
    (l) => (l.suppressed as Record<string, number>).PAYGRESS_TOKEN_MALFORMED!,
  );
  t.ok(held.length <= 6, `${held.length} summaries over about 5 windows`);
  t.equal(
    decisionIds(lines).length + held.reduce((a, b) => a + b, 0),
    sent,
    'every refusal logged or counted',
  );
});

t.test(
  'text of others in a fault of ours is logged without secrets',
  async (t) => {
    const { logger, lines } = keptLog();
    const log = createDecisionLog(logger);
    const secret = 'cd'.repeat(32);
    const token = `cashuB${'o2Ft'.repeat(20)}`;
    log(
      authRequest('fault'),
      {
        kind: 'deny',
        reason: 'PAYGRESS_INTERNAL',
        message: 'internal error',
        fault: 'ours',
        detail: `could not parse: caused by: Unexpected token in "${token}"`,
        stack: `SyntaxError: {"secret":"${secret}"}\n    at JSON.parse`,
      },
      1,
    );
    t.match(lines[0], {
      reason: 'PAYGRESS_INTERNAL',
      detail: 'could not parse: caused by: Unexpected token in "[redacted]"',
      stack: /^SyntaxError: \{"secret":"\[redacted\]"\}/,
    });
  },
);

t.test('a token or grant in the path or host is not logged', async (t) => {
  const { logger, lines } = keptLog();
  const log = createDecisionLog(logger);
  const token = `cashuB${'o2Ft'.repeat(20)}`;
  const grant = `pgr1.${'eyJr'.repeat(6)}.${'c2ln'.repeat(6)}`;
  const sha = 'ab'.repeat(32);
  log(
    {
      ...authRequest('in-path'),
      host: `${token}.example`,
      path: `/redeem/${token}/${grant}/files/${sha}`,
    },
    refusal('PAYGRESS_TOKEN_MALFORMED'),
    1,
  );
  t.match(lines[0], {
    host: '[redacted].example',
    path: /^\/redeem\/\[redacted\]/,
  });
  const line = JSON.stringify(lines[0]);
  t.notOk(line.includes('o2Ft'), 'nothing of the token');
  t.notOk(line.includes('eyJr') || line.includes('c2ln'), 'nor of the grant');
  t.match(lines[0], { path: new RegExp(`/files/${sha}$`) }, 'a hash stays');
});
