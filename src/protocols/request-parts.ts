/**
 * Small pieces every HTTP-based adapter needs to build an AuthRequest from
 * what a proxy sent: header flattening, host and URI splitting.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { randomBytes } from 'node:crypto';
import { readGrantCredential } from '../core/grants.ts';
import { findToken } from '../core/token.ts';

/**
 * The request's headers as one string per lower-cased name. Node has
 * already lower-cased the names and joined repeated values (with `, `)
 * for every header but `set-cookie`, so its map is used as it is unless a
 * name or value is not in that form; only then is a copy made, lists
 * joined with `,` as Envoy joins them.
 */
export function flattenHeaders(
  headers: IncomingHttpHeaders,
): Record<string, string> {
  for (const name in headers) {
    if (typeof headers[name] !== 'string' || name !== name.toLowerCase()) {
      return copyHeaders(headers);
    }
  }
  return headers as Record<string, string>;
}

function copyHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const flat: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    flat[name.toLowerCase()] = Array.isArray(value) ? value.join(',') : value;
  }
  return flat;
}

/** Host without port, lower-cased; IPv6 literals keep their brackets. */
export function hostOnly(value: string | undefined): string {
  const host = (value ?? '').trim().toLowerCase();
  if (host.startsWith('[')) return host.slice(0, host.indexOf(']') + 1);
  const colon = host.indexOf(':');
  // More than one colon without brackets is a bare IPv6 address, no port.
  if (colon === -1 || host.indexOf(':', colon + 1) !== -1) return host;
  return host.slice(0, colon).trim();
}

/**
 * Splits a request target into path and query (without `?`). A `#` stays
 * where it is: a client never sends a fragment, and one in the path is
 * refused by pricing (servers disagree on where such a path ends).
 */
export function splitUri(uri: string | undefined): {
  path: string;
  query: string;
} {
  const target = uri && uri.length > 0 ? uri : '/';
  const q = target.indexOf('?');
  const path = q === -1 ? target : target.slice(0, q);
  return {
    path: path.startsWith('/') ? path : `/${path}`,
    query: q === -1 ? '' : target.slice(q + 1),
  };
}

/**
 * A header value as the bytes the client sent, read as UTF-8: Node hands
 * header values over as latin1, so a raw `é` in a request target (which
 * nginx and Caddy forward as it came) would read as `Ã©` and match no
 * rule written `é`. A value that is not valid UTF-8 stays as it is.
 */
export function headerText(value: string | undefined): string | undefined {
  if (value === undefined || !/[\u0080-\u00ff]/.test(value)) return value;
  const text = Buffer.from(value, 'latin1').toString('utf8');
  return text.includes('\uFFFD') ? value : text;
}

/** First address of an `X-Forwarded-For` list, or the fallback. */
export function firstForwarded(
  value: string | undefined,
  fallback: string,
): string {
  const first = value?.split(',')[0]?.trim();
  return first ? first : fallback;
}

/** A request id: the proxy's when it sent a sane one, else a new one. */
export function requestIdFrom(value: string | undefined): string {
  if (value && /^[\w.:\-]{1,128}$/.test(value)) return value;
  return newRequestId();
}

// Ids are for finding a request's lines in the logs, not secrets: a
// random prefix per process, so restarts and replicas do not repeat one,
// and a counter. A random UUID per request took about 2% of a refusal's
// CPU (perf, on the bench's no-token load), for an id most requests
// never log.
const ID_PREFIX = `pg-${randomBytes(6).toString('hex')}-`;
let idCount = 0;

/** A request id unique within this process and unlikely to recur. */
export function newRequestId(): string {
  idCount += 1;
  return ID_PREFIX + idCount.toString(36);
}

/**
 * Whether the request's `Authorization` carries Paygress's own credential
 * (a Cashu token, or a grant) rather than the application's: read as the
 * core reads them.
 */
export function carriesPaygressCredential(
  headers: Readonly<Record<string, string>>,
): boolean {
  const authorization = headers['authorization'];
  if (authorization === undefined) return false;
  const only = { authorization };
  return (
    findToken(only) !== undefined || readGrantCredential(only, '') !== undefined
  );
}
