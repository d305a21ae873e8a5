/**
 * One log line per decision, the same fields for every protocol. Token
 * material never appears: only the reason code and a short fingerprint of
 * the proofs.
 */
import type { Logger } from 'pino';
import type { AuthRequest, Decision } from '../core/model.ts';
import { withoutRedaction } from '../logger.ts';

/** Called once per decision: the decision log, the metrics. */
export type DecisionObserver = (
  request: AuthRequest,
  decision: Decision,
  durationMs: number,
) => void;

/**
 * Which decisions get a line: `all`, or `payments`: every decision
 * except the two that move no money and come by the thousand, a refusal
 * of a request that carried no credential and an allow that cost nothing
 * (a grant or a free route). Those are counted in the metrics either way.
 */
export type DecisionLogPolicy = 'all' | 'payments';

/**
 * The decision log of a listener, on `logger`'s destination. Every field
 * of a decision line is chosen here and none can hold a token, so these
 * lines skip the logger's redaction, which walked every line and was the
 * largest part of logging a refusal.
 */
export function createDecisionLog(
  logger: Logger,
  policy: DecisionLogPolicy = 'payments',
): DecisionObserver {
  const lines = withoutRedaction(logger);
  return (request, decision, durationMs) => {
    if (policy === 'payments' && routine(decision)) return;
    const fields = {
      reqId: request.requestId,
      protocol: request.protocol,
      method: clip(request.method, 32),
      host: clip(request.host, 256),
      path: clip(request.path, 1024),
      outcome: decision.kind,
      reason: decision.kind === 'deny' ? decision.reason : undefined,
      amount:
        decision.kind === 'allow' ? decision.amount : decision.price?.amount,
      unit: decision.kind === 'allow' ? decision.unit : decision.price?.unit,
      proofs: decision.proofsHash,
      durationMs: Math.round(durationMs * 100) / 100,
    };
    if (decision.kind === 'deny' && decision.fault === 'ours') {
      lines.error(
        { ...fields, detail: decision.detail ?? decision.message },
        'decision',
      );
    } else {
      lines.info(fields, 'decision');
    }
  };
}

/**
 * A request's own words, cut to `max` characters: a client chooses them,
 * and a line per request must not grow with what it sends (a 3 MB path
 * through ext_authz made a 17 MB line).
 */
function clip(value: string, max: number): string {
  return value.length <= max ? value : `${value.slice(0, max)}…`;
}

/** No credential and no money: the bulk of the traffic of a paid route. */
function routine(decision: Decision): boolean {
  return decision.kind === 'allow'
    ? decision.amount === 0
    : decision.reason === 'PAYGRESS_PAYMENT_REQUIRED';
}
