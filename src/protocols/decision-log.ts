/**
 * One log line per decision, the same fields for every protocol. Token
 * material never appears: only the reason code and a short fingerprint of
 * the proofs.
 */
import type { Logger } from 'pino';
import type { AuthRequest, Decision } from '../core/model.ts';
import { redactCredentials, redactSecrets } from '../core/redact.ts';
import { withoutRedaction } from '../logger.ts';
import { handsMoneyBack } from './payment-headers.ts';
import { deliversPayment } from './reply.ts';

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

/** Options of {@link createDecisionLog}. */
export interface DecisionLogOptions {
  /** Which decisions get a line. Default `payments`. */
  readonly policy?: DecisionLogPolicy;
  /**
   * Refusal lines written per window at most, all reasons together; the
   * rest are counted in one summary line per window. 0 lifts the limit.
   * Default {@link DEFAULT_REFUSALS_PER_SECOND}.
   */
  readonly refusalLimit?: number;
  /** Length of a window, in ms. Default 1000. */
  readonly windowMs?: number;
}

/** Refusal lines a second by default: a flood of bad tokens is summarised. */
export const DEFAULT_REFUSALS_PER_SECOND = 50;

/** The decision log: a {@link DecisionObserver} that can be flushed. */
export interface DecisionLog extends DecisionObserver {
  /** Writes the summary of what the limit holds back now (on shutdown). */
  flush(): void;
}

/**
 * The decision log, on `logger`'s destination; one for all listeners, so
 * the refusal limit holds for the process. Every field of a decision line
 * is chosen here and none can hold a token, so these lines skip the
 * logger's redaction, which walked every line and was the largest part of
 * logging a refusal.
 *
 * A decision that moves money (an allow that was paid or used a credit, a
 * refusal handing back a refund or a credit, any answer that delivers a
 * redemption) is always logged. Other refusals are limited: a client
 * sending thousands of bad tokens a second would otherwise write as many
 * lines, filling the node's disk and the operator's log bill. Refusals of
 * the payer's making (`info` lines) and faults of ours (`error` lines)
 * have a budget each, so a flood of bad tokens cannot crowd out the line
 * saying the mint is down; only lines the logger's level writes count.
 * What a budget holds back is counted by reason in one line per window,
 * at its lines' level, and in the metrics.
 */
export function createDecisionLog(
  logger: Logger,
  options: DecisionLogOptions = {},
): DecisionLog {
  const policy = options.policy ?? 'payments';
  const lines = withoutRedaction(logger);
  const perWindow = options.refusalLimit ?? DEFAULT_REFUSALS_PER_SECOND;
  const windowMs = options.windowMs ?? 1000;
  const summary = (level: 'warn' | 'error') => (suppressed: Counts) =>
    lines[level](
      { suppressed, windowMs },
      'refusals not logged: over logRefusalLimit (counted in paygress_decisions_total)',
    );
  const payers = refusalLimit(perWindow, windowMs, summary('warn'));
  const ours = refusalLimit(perWindow, windowMs, summary('error'));

  const log = (
    request: AuthRequest,
    decision: Decision,
    durationMs: number,
  ) => {
    if (policy === 'payments' && routine(decision)) return;
    const fault = decision.kind === 'deny' && decision.fault === 'ours';
    if (!lines.isLevelEnabled(fault ? 'error' : 'info')) return;
    // Allows are never held back (under `all`, free ones included).
    if (
      decision.kind === 'deny' &&
      !deliversPayment(decision) &&
      !handsMoneyBack(decision)
    ) {
      const budget = fault ? ours : payers;
      if (!budget.admit(decision.reason)) return;
    }
    const fields = {
      reqId: request.requestId,
      protocol: request.protocol,
      method: clip(request.method, 32),
      // A client's own text, in which a token may be put.
      host: clip(redactCredentials(request.host), 256),
      path: clip(redactCredentials(request.path), 1024),
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
        {
          ...fields,
          // Text of others' making (a mint's error detail, a message
          // quoting input): the one place a line's field could hold a token.
          detail: clip(
            redactSecrets(decision.detail ?? decision.message),
            4096,
          ),
          ...(decision.stack !== undefined && {
            stack: redactSecrets(decision.stack),
          }),
        },
        'decision',
      );
    } else {
      lines.info(fields, 'decision');
    }
  };
  return Object.assign(log, {
    flush: () => {
      payers.flush();
      ours.flush();
    },
  });
}

type Counts = Record<string, number>;

/** A budget of lines per window; see {@link refusalLimit}. */
interface Budget {
  /** Whether a line may be written; counts it by reason when not. */
  admit(reason: string): boolean;
  /** Reports what was held back since the last report, if anything. */
  flush(): void;
}

/**
 * A budget of `perWindow` lines per window of `windowMs` (0: no limit).
 * What it holds back goes to `report` when the window ends, by a timer
 * armed only while something is held back (so an idle process keeps no
 * timer), or on `flush`. The timer ends the window: timers may fire a
 * little before the clock says the window is over.
 */
function refusalLimit(
  perWindow: number,
  windowMs: number,
  report: (suppressed: Counts) => void,
): Budget {
  if (perWindow === 0) return { admit: () => true, flush: () => {} };
  let windowStart = -Infinity;
  let written = 0;
  let suppressed = new Map<string, number>();
  let timer: NodeJS.Timeout | undefined;
  const flush = () => {
    clearTimeout(timer);
    timer = undefined;
    if (suppressed.size === 0) return;
    const counts = Object.fromEntries(suppressed);
    suppressed = new Map();
    report(counts);
  };
  const endWindow = () => {
    flush();
    windowStart = -Infinity;
  };
  return {
    admit(reason) {
      const now = performance.now();
      if (now - windowStart >= windowMs) {
        flush();
        windowStart = now;
        written = 0;
      }
      if (written < perWindow) {
        written += 1;
        return true;
      }
      suppressed.set(reason, (suppressed.get(reason) ?? 0) + 1);
      timer ??= setTimeout(endWindow, windowStart + windowMs - now).unref();
      return false;
    },
    flush,
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

/**
 * No credential and no money: the bulk of the traffic of a paid route. An
 * allow that used up a single-request credit spent money, so is not.
 */
function routine(decision: Decision): boolean {
  return decision.kind === 'allow'
    ? decision.amount === 0 && !deliversPayment(decision)
    : decision.reason === 'PAYGRESS_PAYMENT_REQUIRED';
}
