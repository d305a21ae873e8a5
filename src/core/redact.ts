/**
 * Taking what could be money out of text Paygress did not write: an
 * error's message and stack, a mint's error detail. Paygress never puts a
 * token in such text itself, but a mint may echo the proofs it was sent,
 * and a parser's message may quote its input; both reach the log.
 */

const CENSOR = '[redacted]';

/** Length from which a value is taken out even inside a word. */
const MIN_LONE = 16;

/**
 * A serialised Cashu token (NUT-00 V3 `cashuA`, V4 `cashuB`), percent-
 * encoded too. Paygress reads only the lower-case prefix, and the shortest
 * real token (one proof) is some 200 characters: a word such as
 * `cashuAPI` in a path is not one.
 */
const TOKEN = /cashu[AB][A-Za-z0-9_\-+/=%]{40,}/g;
/** A grant credential (`pgr1.` payload `.` MAC), a bearer credential too. */
const GRANT = /pgr1\.[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]*)?/g;
/**
 * A URL's user and password (what stands between its scheme and the last
 * `@` before a space, a slash in a password included), and its query and
 * fragment: a kubeconfig's server or a library's message may carry either.
 */
const URL_USERINFO = /(\b[a-z][a-z0-9+.-]*:\/\/)[^\s@]*@/gi;
const URL_QUERY = /(\b[a-z][a-z0-9+.-]*:\/\/[^\s?#]*)[?#][^\s"'<>)]*/gi;
/** Whatever follows `Bearer`, as an Authorization header's value quoted. */
const BEARER = /(\bbearer\s+)[^\s"',;]+/gi;
/**
 * A proof's secret as a field: JSON, as Node or Python print an object's
 * (`secret: '…'`, `'secret': '…'`), or as a keyword (`secret='…'`).
 */
const SECRET_FIELD =
  /(["']?\bsecret["']?\s*[:=]\s*)(["'])(?:\\.|(?!\2)[^\\])*\2/g;
/**
 * A run of 64 hex digits or more, but for exactly 66: a random secret is
 * 32 bytes as hex, and one quoted beside its C makes a longer run; a Y, a
 * C or a V2 keyset id alone is 33 bytes. A digest named as one
 * (`sha256:…`, an image's) stays.
 */
const SECRET_HEX =
  /(?<![0-9a-fA-F]|sha(?:256|384|512)[:-])(?:[0-9a-fA-F]{64,65}|[0-9a-fA-F]{67,})(?![0-9a-fA-F])/g;

/**
 * `text` with every Cashu token, grant credential and bearer credential,
 * every value of a field named `secret`, every run of 64 hex digits or
 * more, and a URL's user, password, query and fragment replaced by
 * `[redacted]`. Public values (Ys, signatures, V2 keyset ids: 66 digits)
 * are left as they are. A secret of another form quoted bare is not
 * recognised: where the secrets are known, take them out by value first
 * ({@link withoutValues}).
 */
export function redactSecrets(text: string): string {
  return redactCredentials(text)
    .replace(SECRET_FIELD, `$1$2${CENSOR}$2`)
    .replace(SECRET_HEX, CENSOR)
    .replace(URL_USERINFO, `$1${CENSOR}@`)
    .replace(URL_QUERY, `$1?${CENSOR}`);
}

/**
 * `text` with every Cashu token, grant credential and bearer credential
 * replaced by `[redacted]`, and nothing else: for text a client chose,
 * such as a path, where a hex run is more likely a file's hash.
 */
export function redactCredentials(text: string): string {
  // Grants first: a token's alphabet has `/`, and would run into one.
  return text
    .replace(GRANT, CENSOR)
    .replace(TOKEN, CENSOR)
    .replace(BEARER, `$1${CENSOR}`);
}

/**
 * `text` without any of `values` (one shorter than 16 characters only
 * where it stands alone, not as letters of a word): as it is, escaped once or twice as a JSON string
 * (`/` escaped too, as some encoders do), percent-encoded, as Python's
 * repr writes it, and a hex value in upper case. One pass, so what a
 * replacement writes is never searched again.
 */
export function withoutValues(text: string, values: readonly string[]): string {
  const forms = new Set<string>();
  for (const value of values) {
    if (value === '') continue;
    const once = JSON.stringify(value).slice(1, -1);
    const twice = JSON.stringify(once).slice(1, -1);
    for (const form of [
      value,
      once,
      twice,
      once.replaceAll('/', '\\/'),
      twice.replaceAll('/', '\\\\/'),
      encodeURIComponent(value),
      encodeURIComponent(once),
      value.replaceAll('\\', '\\\\').replaceAll("'", "\\'"),
      /^[0-9a-f]+$/.test(value) ? value.toUpperCase() : value,
    ]) {
      forms.add(form);
    }
  }
  if (forms.size === 0) return text;
  const escaped = (list: string[]) =>
    list
      .sort((a, b) => b.length - a.length)
      .map((form) => form.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
      .join('|');
  // A short one must stand alone: a letter of a word is not a quote of
  // it. A long one is not found inside a word by chance.
  const long = [...forms].filter((form) => form.length >= MIN_LONE);
  const short = [...forms].filter((form) => form.length < MIN_LONE);
  const alternatives = [
    ...(long.length > 0 ? [`(?:${escaped(long)})`] : []),
    ...(short.length > 0
      ? [`(?<![A-Za-z0-9])(?:${escaped(short)})(?![A-Za-z0-9])`]
      : []),
  ];
  return text.replace(new RegExp(alternatives.join('|'), 'g'), CENSOR);
}
