/**
 * Taking what could be money out of text Paygress did not write: an
 * error's message and stack, a mint's error detail. Paygress never puts a
 * token in such text itself, but a mint may echo the proofs it was sent,
 * and a parser's message may quote its input; both reach the log.
 */

const CENSOR = '[redacted]';

/** A serialised Cashu token (NUT-00 V3 `cashuA`, V4 `cashuB`). */
const TOKEN = /cashu[AB][A-Za-z0-9_\-+/=]{8,}/g;
/** A proof's secret as a JSON field, or as Node prints an object's. */
const SECRET_FIELD =
  /("secret"\s*:\s*|\bsecret:\s*)(["'])(?:\\.|(?!\2)[^\\])*\2/g;
/** 32 bytes as hex, the form of a random secret (a Y or a C is 33). */
const SECRET_HEX = /(?<![0-9a-fA-F])[0-9a-fA-F]{64}(?![0-9a-fA-F])/g;

/**
 * `text` with every Cashu token, every value of a field named `secret`
 * and every run of exactly 64 hex digits replaced by `[redacted]`. Public
 * values (Ys, signatures, V2 keyset ids: 66 digits) are left as they are.
 */
export function redactSecrets(text: string): string {
  return text
    .replace(TOKEN, CENSOR)
    .replace(SECRET_FIELD, `$1$2${CENSOR}$2`)
    .replace(SECRET_HEX, CENSOR);
}
