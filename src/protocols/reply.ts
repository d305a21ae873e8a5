/**
 * What adapters render: the HTTP answer before it is written, the rule by
 * which a rendering is kept, and what happens to an answer that could not
 * be delivered.
 */
import type { Logger } from 'pino';
import type { Decider, Decision } from '../core/model.ts';

/** An HTTP answer an adapter rendered, before it is written. */
export interface Reply {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  /** Body text; empty means `Content-Length: 0`. */
  readonly body: string;
}

/**
 * What an adapter renders from a decision, made once for each constant
 * (frozen) decision and kept in `cache`; a decision of one request alone
 * is rendered every time.
 */
export function renderOnce<T>(
  cache: WeakMap<Decision, T>,
  decision: Decision,
  render: (decision: Decision) => T,
): T {
  if (!Object.isFrozen(decision)) return render(decision);
  let rendered = cache.get(decision);
  if (rendered === undefined) {
    rendered = render(decision);
    cache.set(decision, rendered);
  }
  return rendered;
}

/**
 * Whether an answer delivers something paid for, which stays owed if the
 * answer is lost: a redemption, or a single-request credit used up.
 */
export function deliversPayment(decision: Decision): boolean {
  return (
    decision.redemptionId !== undefined ||
    (decision.kind === 'allow' && decision.creditId !== undefined)
  );
}

/**
 * The answer to a payment did not reach the payer: says so in the log and
 * tells the decider, which keeps the payment owed. Never throws: it runs
 * where nobody is left to answer.
 */
export function reportUndelivered(
  decider: Decider,
  decision: Decision,
  logger: Logger,
  reqId: string,
  why = 'paid answer not delivered (the caller was gone)',
): void {
  logger.warn(
    { reqId, proofs: decision.proofsHash },
    `${why}; a retry with the same token or credit gets it`,
  );
  try {
    decider.undelivered?.(decision);
  } catch (err) {
    logError(
      logger,
      { err, reqId },
      'the undelivered answer could not be recorded',
    );
  }
}

/**
 * The answer to a payment goes out so close to the caller's deadline that
 * it may be dropped unseen: the decider keeps it owed (once per payment),
 * and the log says so. Returns whether it was kept owed; never throws.
 */
export function reportSentLate(
  decider: Decider,
  decision: Decision,
  logger: Logger,
  reqId: string,
  why: string,
): boolean {
  let kept = false;
  try {
    kept = decider.sentLate?.(decision) ?? false;
  } catch (err) {
    logError(logger, { err, reqId }, 'the late answer could not be recorded');
  }
  if (kept) {
    logger.warn(
      { reqId, proofs: decision.proofsHash },
      `${why}, kept owed in case it arrives too late; a retry with the same token or credit gets it`,
    );
  }
  return kept;
}

/**
 * Logs an error where nothing is left to catch a throw: writing an error
 * runs its getters and serialisers, and one that throws would otherwise
 * end the process, or leave a request unanswered. The line is then
 * written without its `err`.
 */
export function logError(
  logger: Logger,
  fields: { readonly err: unknown; readonly [field: string]: unknown },
  message: string,
): void {
  try {
    logger.error(fields, message);
  } catch {
    const { err: _unwritable, ...rest } = fields;
    try {
      logger.error(rest, `${message} (the error itself could not be written)`);
    } catch {
      // The logger itself is broken: nothing left to tell.
    }
  }
}
