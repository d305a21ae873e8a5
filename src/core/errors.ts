/**
 * Every reason Paygress refuses a request, one class per reason, each with
 * a stable `PAYGRESS_*` code. The code is the `reason` in a deny body, the
 * `reason` field of the decision log line and the `reason` metric label.
 * docs/reason-codes.md lists them for operators; a test keeps both in step.
 */

/** Who has to act: the payer (pay, fix the token) or the operator. */
export type Fault = 'payer' | 'ours';

/** Every stable reason code with the fault it implies. */
export const REASONS = {
  PAYGRESS_PAYMENT_REQUIRED: 'payer',
  PAYGRESS_TOKEN_TOO_LARGE: 'payer',
  PAYGRESS_TOKEN_MALFORMED: 'payer',
  PAYGRESS_MINT_NOT_ALLOWED: 'payer',
  PAYGRESS_UNIT_MISMATCH: 'payer',
  PAYGRESS_INSUFFICIENT_AMOUNT: 'payer',
  PAYGRESS_KEYSET_UNKNOWN: 'payer',
  PAYGRESS_DLEQ_INVALID: 'payer',
  PAYGRESS_DLEQ_REQUIRED: 'payer',
  PAYGRESS_TOKEN_REPLAYED: 'payer',
  PAYGRESS_TOKEN_PENDING: 'payer',
  PAYGRESS_TOKEN_REJECTED: 'payer',
  PAYGRESS_NOT_HTTP: 'payer',
  PAYGRESS_REQUEST_AMBIGUOUS: 'payer',
  PAYGRESS_GRANT_INVALID: 'payer',
  PAYGRESS_GRANT_EXPIRED: 'payer',
  PAYGRESS_GRANT_SCOPE: 'payer',
  PAYGRESS_MINT_UNAVAILABLE: 'ours',
  PAYGRESS_MINT_ERROR: 'ours',
  PAYGRESS_STORE_FAILED: 'ours',
  PAYGRESS_PROVISION_FAILED: 'ours',
  PAYGRESS_INTERNAL: 'ours',
} as const satisfies Record<string, Fault>;

export type ReasonCode = keyof typeof REASONS;

/** Options of a {@link PaygressError}. */
export type PaygressErrorOptions = ErrorOptions & { refusedByMint?: boolean };

/** Base class: a refusal with a stable code and whose fault it is. */
export class PaygressError extends Error {
  readonly code: ReasonCode;
  readonly fault: Fault;
  /**
   * The mint itself refused the request for what it says, an answer any
   * delivery of it would get: none of them can have run.
   */
  readonly refusedByMint: boolean;

  constructor(
    code: ReasonCode,
    message: string,
    options?: PaygressErrorOptions,
  ) {
    // A refusal of the payer's making is an answer, not a fault: nobody
    // reads its stack, and capturing one was the largest single cost of
    // refusing a replayed token. Faults of ours keep theirs.
    const limit = Error.stackTraceLimit;
    if (REASONS[code] === 'payer') Error.stackTraceLimit = 0;
    try {
      super(message, options);
    } finally {
      Error.stackTraceLimit = limit;
    }
    this.name = 'PaygressError';
    this.code = code;
    this.fault = REASONS[code];
    this.refusedByMint = options?.refusedByMint ?? false;
  }
}

function reason(code: ReasonCode) {
  return class extends PaygressError {
    constructor(message: string, options?: PaygressErrorOptions) {
      super(code, message, options);
    }
  };
}

/** No token or grant was presented. */
export class PaymentRequiredError extends reason('PAYGRESS_PAYMENT_REQUIRED') {}
/** The token is longer than the configured limit; it was not decoded. */
export class TokenTooLargeError extends reason('PAYGRESS_TOKEN_TOO_LARGE') {}
/** The token is not a valid `cashuA`/`cashuB` token. */
export class TokenMalformedError extends reason('PAYGRESS_TOKEN_MALFORMED') {}
/** The token names a mint that is not on the allow-list. */
export class MintNotAllowedError extends reason('PAYGRESS_MINT_NOT_ALLOWED') {}
/** The token's unit is not the unit of the price. */
export class UnitMismatchError extends reason('PAYGRESS_UNIT_MISMATCH') {}
/** The token's value after the mint's input fees is below the price. */
export class InsufficientAmountError extends reason(
  'PAYGRESS_INSUFFICIENT_AMOUNT',
) {
  /**
   * What the refusal's payment request asks for, when more than the
   * route's usual request: the price plus the input fees of a token of as
   * many proofs as the one refused.
   */
  readonly asked: number | undefined;

  constructor(
    message: string,
    options?: PaygressErrorOptions & { asked?: number },
  ) {
    super(message, options);
    this.asked = options?.asked;
  }
}
/** A proof names a keyset the mint does not know (or for another unit). */
export class KeysetUnknownError extends reason('PAYGRESS_KEYSET_UNKNOWN') {}
/** A proof carries a DLEQ proof that does not verify. */
export class DleqInvalidError extends reason('PAYGRESS_DLEQ_INVALID') {}
/** DLEQ proofs are required by configuration and a proof has none. */
export class DleqRequiredError extends reason('PAYGRESS_DLEQ_REQUIRED') {}
/** A proof was already redeemed, or appears twice in the token. */
export class TokenReplayedError extends reason('PAYGRESS_TOKEN_REPLAYED') {}
/** A proof is being redeemed by another request right now. */
export class TokenPendingError extends reason('PAYGRESS_TOKEN_PENDING') {}
/** The mint refused the proofs (bad signature, inactive keyset, ...). */
export class TokenRejectedError extends reason('PAYGRESS_TOKEN_REJECTED') {}
/** The check carried no HTTP request (e.g. Envoy checking TCP traffic). */
export class NotHttpError extends reason('PAYGRESS_NOT_HTTP') {}
/** The proxy's description of the request contradicts itself. */
export class RequestAmbiguousError extends reason(
  'PAYGRESS_REQUEST_AMBIGUOUS',
) {}
/** A grant credential is malformed or its signature does not verify. */
export class GrantInvalidError extends reason('PAYGRESS_GRANT_INVALID') {}
/** A grant credential has expired or its single use is spent. */
export class GrantExpiredError extends reason('PAYGRESS_GRANT_EXPIRED') {}
/** A grant credential is valid but for another route. */
export class GrantScopeError extends reason('PAYGRESS_GRANT_SCOPE') {}
/** The mint could not be reached or did not answer in time. */
export class MintUnavailableError extends reason('PAYGRESS_MINT_UNAVAILABLE') {
  /**
   * True only when the request certainly never reached the mint (the
   * connection was refused), so nothing it asked for can have happened.
   */
  readonly notSent: boolean;
  /**
   * True when the mint refused only because our view of its keysets was
   * stale: nothing happened, and the same redemption may be prepared again.
   */
  readonly retry: boolean;

  constructor(
    message: string,
    options?: ErrorOptions & { notSent?: boolean; retry?: boolean },
  ) {
    super(message, options);
    this.notSent = options?.notSent ?? false;
    this.retry = options?.retry ?? false;
  }
}
/** The mint answered something that is not a valid Cashu answer. */
export class MintError extends reason('PAYGRESS_MINT_ERROR') {}
/** The wallet store could not record the redemption. */
export class StoreFailedError extends reason('PAYGRESS_STORE_FAILED') {}
/** The payment was taken but the pod it buys could not be provisioned. */
export class ProvisionFailedError extends reason('PAYGRESS_PROVISION_FAILED') {
  /**
   * True when a call that changes the cluster (create, patch, delete) got
   * no answer (its deadline passed, the connection was cut, the answer
   * could not be read): it may have taken effect all the same.
   */
  readonly mayHaveApplied: boolean;

  constructor(
    message: string,
    options?: ErrorOptions & { mayHaveApplied?: boolean },
  ) {
    super(message, options);
    this.mayHaveApplied = options?.mayHaveApplied ?? false;
  }
}
/** An unexpected fault inside Paygress. */
export class InternalError extends reason('PAYGRESS_INTERNAL') {}

/** Wraps anything thrown into a PaygressError, failing closed. */
export function toPaygressError(err: unknown): PaygressError {
  if (err instanceof PaygressError) return err;
  return new InternalError('internal error while deciding the request', {
    cause: err,
  });
}
