/**
 * What every protocol says the same way: the headers of an allow, the
 * payment headers and JSON body of a deny. Adapters choose the status code
 * and the channel; the words are shared so a client sees one vocabulary.
 */
import type { ReasonCode } from '../core/errors.ts';
import type { Allow, Deny } from '../core/model.ts';
import type { Reply } from './reply.ts';

/** Header carrying a NUT-18 payment request on a deny (NUT-24). */
export const X_CASHU = 'X-Cashu';

/**
 * Refusals of a token not as the payment request asked (another mint,
 * another unit, too little), which NUT-24 answers with 400; every other
 * refusal of the payer's asks for payment with 402. Both carry the
 * payment request.
 */
const NOT_AS_REQUESTED: ReadonlySet<string> = new Set<ReasonCode>([
  'PAYGRESS_MINT_NOT_ALLOWED',
  'PAYGRESS_UNIT_MISMATCH',
  'PAYGRESS_INSUFFICIENT_AMOUNT',
]);

/** Whether a deny of the payer's is a 400 (NUT-24), not a 402. */
export function isBadPayment(deny: Deny): boolean {
  return NOT_AS_REQUESTED.has(deny.reason);
}

/**
 * The 200 both HTTP adapters answer an allow with: the headers the
 * upstream sees (overwriting any client copies), then those for the client.
 */
export function allowReply(allow: Allow): Reply {
  return {
    status: 200,
    headers: { ...allow.upstreamHeaders, ...allow.clientHeaders },
    body: '',
  };
}

/**
 * Headers a client needs to pay: `X-Cashu` with the payment request (or a
 * refund token), and `X-Paygress-Reason` with the stable code.
 */
export function denyHeaders(deny: Deny): Record<string, string> {
  const headers: Record<string, string> = { 'X-Paygress-Reason': deny.reason };
  const cashu = deny.refund ?? deny.paymentRequest;
  if (cashu !== undefined) headers[X_CASHU] = cashu;
  if (deny.price !== undefined) {
    headers['X-Payment-Amount'] = String(deny.price.amount);
    headers['X-Payment-Unit'] = deny.price.unit;
  }
  if (deny.credit !== undefined) headers['X-Paygress-Grant'] = deny.credit;
  return headers;
}

/**
 * One `WWW-Authenticate` challenge that carries the payment request (or a
 * refund token), for
 * channels where it is the only header that reaches the client (nginx
 * without snippets copies the first `WWW-Authenticate` line of a 401).
 */
export function paymentChallenge(deny: Deny): string {
  const params = [`reason="${deny.reason}"`];
  if (deny.price !== undefined) {
    params.push(`amount="${deny.price.amount}"`, `unit="${deny.price.unit}"`);
  }
  if (deny.paymentRequest !== undefined) {
    params.push(`request="${deny.paymentRequest}"`);
  }
  if (deny.refund !== undefined) params.push(`refund="${deny.refund}"`);
  if (deny.credit !== undefined) params.push(`grant="${deny.credit}"`);
  return `Cashu ${params.join(', ')}`;
}

/**
 * Whether a deny hands the payer's money back (a refund token, or a credit
 * grant): such an answer must reach the client, whatever the fault.
 */
export function handsMoneyBack(deny: Deny): boolean {
  return deny.refund !== undefined || deny.credit !== undefined;
}

/** The JSON body of a deny, for protocols that deliver a body. */
export function denyBody(deny: Deny): string {
  return JSON.stringify({
    error:
      deny.fault === 'ours'
        ? 'unavailable'
        : isBadPayment(deny)
          ? 'bad_payment'
          : 'payment_required',
    reason: deny.reason,
    message: deny.message,
    amount: deny.price?.amount,
    unit: deny.price?.unit,
    mints: deny.price?.mints,
    paymentRequest: deny.paymentRequest,
    refund: deny.refund,
    grant: deny.credit,
  });
}
