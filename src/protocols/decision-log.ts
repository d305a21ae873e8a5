/**
 * One log line per decision, the same fields for every protocol. Token
 * material never appears: only the reason code and a short fingerprint of
 * the proofs.
 */
import type { Logger } from 'pino';
import type { AuthRequest, Decision } from '../core/model.ts';

/** Called once per decision, for metrics. */
export type DecisionObserver = (
  request: AuthRequest,
  decision: Decision,
  durationMs: number,
) => void;

/** Logs a decision on the request's child logger. */
export function logDecision(
  log: Logger,
  request: AuthRequest,
  decision: Decision,
  durationMs: number,
): void {
  const fields = {
    protocol: request.protocol,
    method: request.method,
    host: request.host,
    path: request.path,
    outcome: decision.kind,
    reason: decision.kind === 'deny' ? decision.reason : undefined,
    amount:
      decision.kind === 'allow' ? decision.amount : decision.price?.amount,
    unit: decision.kind === 'allow' ? decision.unit : decision.price?.unit,
    proofs: decision.proofsHash,
    durationMs: Math.round(durationMs * 100) / 100,
  };
  if (decision.kind === 'deny' && decision.fault === 'ours') {
    log.error({ ...fields, detail: decision.message }, 'decision');
  } else {
    log.info(fields, 'decision');
  }
}
