/**
 * The request model every protocol adapter produces and the decision the
 * core returns. Nothing here knows a status code or a wire format.
 */
import type { ReasonCode, Fault } from './errors.ts';

/** Which external-auth protocol a request arrived on. */
export type Protocol = 'forward' | 'nginx' | 'ext-authz';

/** The original client request, as the ingress described it. */
export interface AuthRequest {
  /** Protocol the request arrived on; used for logs and metrics only. */
  readonly protocol: Protocol;
  /** HTTP method of the original request as sent, e.g. `GET`. */
  readonly method: string;
  /** `http` or `https`; empty when the ingress did not say. */
  readonly scheme: string;
  /** Host of the original request, lower-cased, without port. */
  readonly host: string;
  /** Path of the original request, without the query string. */
  readonly path: string;
  /** Query string without the leading `?`; empty when there is none. */
  readonly query: string;
  /**
   * Headers of the original request with lower-cased names. Repeated
   * headers are joined with `,` as Envoy does.
   */
  readonly headers: Readonly<Record<string, string>>;
  /** Address of the client as the ingress reported it; may be empty. */
  readonly clientAddress: string;
  /** Request id from the ingress (`X-Request-ID`) or one we generated. */
  readonly requestId: string;
  /**
   * Set by an adapter when the headers describing the original request
   * disagree, so that which request is meant depends on which one the
   * proxy set: the request is refused, never priced.
   */
  readonly ambiguity?: string;
}

/** An amount in a mint unit. */
export interface Price {
  /** Whole units of `unit`, e.g. 1000 for 1000 sat. */
  readonly amount: number;
  /** Cashu unit, e.g. `sat`. */
  readonly unit: string;
  /** Mint URLs (normalised) that a token for this price may come from. */
  readonly mints: readonly string[];
}

/** The request may go on to the upstream. */
export interface Allow {
  readonly kind: 'allow';
  /** Net value received for this request, in `unit` (0 when free). */
  readonly amount: number;
  readonly unit: string;
  /**
   * Headers to set on the request that goes upstream, with canonical
   * capitalisation (`X-Payment-Verified`, ...). Adapters overwrite any
   * client-sent header of the same name.
   */
  readonly upstreamHeaders: Readonly<Record<string, string>>;
  /** Headers for the client's response (for example a grant credential). */
  readonly clientHeaders: Readonly<Record<string, string>>;
  /** A short, non-secret fingerprint of the proofs, for logs. */
  readonly proofsHash?: string;
  /** The redemption this answer delivers; see {@link Decider.undelivered}. */
  readonly redemptionId?: string;
  /**
   * The single-request credit this answer uses up; see
   * {@link Decider.undelivered}.
   */
  readonly creditId?: string;
}

/** The request is refused. */
export interface Deny {
  readonly kind: 'deny';
  /** Stable reason code, the same in responses, logs and metrics. */
  readonly reason: ReasonCode;
  /**
   * A sentence the client can act on. Never contains token material, nor
   * (for a fault of ours) details of the operator's systems.
   */
  readonly message: string;
  /** Whose fault the refusal is: `payer` (pay / fix the token) or `ours`. */
  readonly fault: Fault;
  /**
   * For a fault of ours, what went wrong for the operator (its causes
   * included): logged, never sent to the client.
   */
  readonly detail?: string;
  /**
   * For `PAYGRESS_INTERNAL`, a bug: the stack of the error at the root of
   * its causes, where the bug is. Logged, never sent to the client.
   */
  readonly stack?: string;
  /** What the request costs; absent when no price applies (e.g. faults). */
  readonly price?: Price;
  /** NUT-18 payment request (`creqA…`) for `price`, when there is one. */
  readonly paymentRequest?: string;
  /** A short, non-secret fingerprint of the proofs, for logs. */
  readonly proofsHash?: string;
  /**
   * Cashu token (`cashuB…`) handed back to the payer when we redeemed a
   * payment but could not deliver what it bought.
   */
  readonly refund?: string;
  /**
   * Grant credential holding a payment we kept but could not deliver on;
   * the payer retries with it instead of paying again.
   */
  readonly credit?: string;
  /** The redemption this answer delivers; see {@link Decider.undelivered}. */
  readonly redemptionId?: string;
}

/**
 * What the core decided. A frozen decision is a constant the decider may
 * return again for other requests, so adapters may cache what they render
 * from it; an unfrozen one belongs to its request alone.
 */
export type Decision = Allow | Deny;

/** The one entry point adapters call. */
export interface Decider {
  decide(request: AuthRequest): Promise<Decision>;
  /**
   * The answer to a payment (a decision with a `redemptionId`, or an
   * allow with a `creditId`) did not reach the payer: the caller gave up
   * or was cut off before it was sent. The payment stays owed, so the
   * same token gets it again; a credit stays good for one request.
   */
  undelivered?(decision: Decision): void;
  /**
   * The allow of a payment or credit goes out so close to the caller's
   * deadline that the caller may drop it unseen. Keeps it owed as
   * {@link undelivered} does, but once per payment or credit (a second
   * such answer is delivered: the first may well have arrived), and a
   * payment so kept is never handed back by its retry; returns whether it
   * was kept owed.
   */
  sentLate?(decision: Decision): boolean;
}
