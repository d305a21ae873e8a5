/**
 * Mint URLs as Paygress compares them. A token's mint URL is attacker
 * input: it is normalised and compared exactly, never by prefix, so that
 * `https://mint.example.com.evil` is not `https://mint.example.com`.
 */
import { MintNotAllowedError } from './errors.ts';

/**
 * Lower-cases scheme and host, drops a default port and trailing slashes,
 * and rejects credentials, queries and fragments. Throws
 * `MintNotAllowedError` for anything that is not an http(s) URL.
 */
export function normalizeMintUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value.trim());
  } catch {
    throw new MintNotAllowedError('mint URL is not a valid URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new MintNotAllowedError('mint URL must be http or https');
  }
  if (url.username || url.password || url.search || url.hash) {
    throw new MintNotAllowedError(
      'mint URL must not carry credentials, a query or a fragment',
    );
  }

  const path = url.pathname.replace(/\/+$/, '');
  return `${url.protocol}//${url.host}${path}`;
}

/** Normalises `value`, or returns undefined when it is not a mint URL. */
export function tryNormalizeMintUrl(value: string): string | undefined {
  try {
    return normalizeMintUrl(value);
  } catch {
    return undefined;
  }
}
