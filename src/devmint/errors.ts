/**
 * Error answers of the Paygress dev mint, numbered as the NUT error table
 * (cashubtc/nuts `error_codes.md`) numbers them, so that clients can branch
 * on the same codes a production mint sends.
 */

/** NUT error codes the dev mint uses. `unspecified` (0) has no table entry. */
export const ERROR_CODES = {
  unspecified: 0,
  proofInvalid: 10001,
  proofsSpent: 11001,
  proofsPending: 11002,
  outputsSigned: 11003,
  outputsPending: 11004,
  unbalanced: 11005,
  amountOutOfRange: 11006,
  duplicateInputs: 11007,
  duplicateOutputs: 11008,
  multipleUnits: 11009,
  unitMismatch: 11010,
  unitUnsupported: 11013,
  witnessInvalid: 20008,
  keysetUnknown: 12001,
  keysetInactive: 12002,
  quoteNotPaid: 20001,
  quoteIssued: 20002,
  quotePending: 20005,
} as const;

/** A refusal the mint answers with HTTP 400 `{ detail, code }` (NUT-00). */
export class MintFailure extends Error {
  /** NUT error code, one of {@link ERROR_CODES}. */
  readonly code: number;
  /** Human-readable reason, sent as `detail`. */
  readonly detail: string;

  constructor(code: number, detail: string) {
    super(detail);
    this.name = 'MintFailure';
    this.code = code;
    this.detail = detail;
  }
}

/** Shorthand for a malformed request body. */
export function malformed(detail: string): MintFailure {
  return new MintFailure(
    ERROR_CODES.unspecified,
    `malformed request: ${detail}`,
  );
}
