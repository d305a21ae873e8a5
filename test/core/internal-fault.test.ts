/**
 * A bug inside the gate fails closed as PAYGRESS_INTERNAL, and its log
 * line carries the stack of the error at the root of it, which neither
 * the client's answer nor any other fault's line does.
 */
import t from 'tap';
import { Gate, type GateOptions } from '../../src/core/gate.ts';
import type { Deny } from '../../src/core/model.ts';
import { createDecisionLog } from '../../src/protocols/decision-log.ts';
import { denyBody } from '../../src/protocols/payment-headers.ts';
import { authRequest } from '../support/auth-request.ts';
import { keptLog } from '../support/stack.ts';

const request = authRequest('bug-1');

function pricedBy(route: () => never): Gate {
  // Nothing past pricing is reached: the rest of the options stay unused.
  return new Gate({ pricing: { route } } as unknown as GateOptions);
}

function misread(): never {
  const rules = undefined as unknown as { length: number }[];
  // A bug as they come: reading a field of undefined.
  throw new Error('pricing failed', { cause: readLength(rules) });
}
function readLength(rules: { length: number }[]): Error {
  try {
    return new Error(String(rules[0]!.length));
  } catch (err) {
    return err as Error;
  }
}

t.test('a bug is refused as ours, its stack in the log only', async (t) => {
  const decision = (await pricedBy(misread).decide(request)) as Deny;
  t.equal(decision.kind, 'deny');
  t.equal(decision.reason, 'PAYGRESS_INTERNAL');
  t.equal(decision.fault, 'ours');
  t.match(decision.stack, /^TypeError: Cannot read properties of undefined/);
  t.match(decision.stack, /\n\s+at readLength \(.*internal-fault\.test\.ts/);

  const body = denyBody(decision);
  t.notMatch(body, /TypeError|readLength|\bat /, 'the client gets none of it');

  const { logger, lines } = keptLog();
  const log = createDecisionLog(logger);
  log(request, decision, 1);
  const [line] = lines;
  t.equal(line?.reason, 'PAYGRESS_INTERNAL');
  t.match(line?.detail, /pricing failed: caused by: Cannot read properties/);
  t.equal(line?.stack, decision.stack, 'the line carries the stack');

  const mintDown: Deny = {
    kind: 'deny',
    reason: 'PAYGRESS_MINT_UNAVAILABLE',
    message: 'try again',
    fault: 'ours',
    detail: 'mint did not answer in time',
  };
  log({ ...request, requestId: 'down' }, mintDown, 1);
  t.notOk('stack' in lines[1]!, 'a fault of the mint has no stack');
});

t.test('a long stack is cut where no quoted value is split', async (t) => {
  const secret = 'ab'.repeat(32);
  for (const filler of [4060, 4070, 4090]) {
    // A parser's message quoting a secret across the 4 KiB the line keeps.
    const quoting = (): never => {
      throw new SyntaxError(`${'x'.repeat(filler)} "${secret}" is not JSON`);
    };
    const decision = (await pricedBy(quoting).decide(request)) as Deny;
    t.ok(decision.stack!.length <= 4096, `${filler}: clipped`);
    const { logger, lines } = keptLog();
    createDecisionLog(logger)(request, decision, 1);
    const logged = JSON.stringify(lines[0]);
    t.notOk(logged.includes(secret.slice(0, 8)), `${filler}: no fragment`);
  }
});
