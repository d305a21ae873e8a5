/**
 * Grants: signed credentials that let a payer use a route again without
 * paying per request, until they expire. A grant says what was bought,
 * never how: it carries no token or proof material.
 *
 * Credential: `pgr1.` + base64url(JSON payload) + `.` + base64url(HMAC-
 * SHA256 over everything before the second dot). The payload names the key
 * id (first 8 hex of sha256(key)) so keys can rotate: new grants are signed
 * with the current key, grants signed by previous keys stay valid until
 * those keys are removed.
 */
import {
  createHash,
  createHmac,
  createSecretKey,
  timingSafeEqual,
  type KeyObject,
} from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { systemClock, type Clock } from './ports.ts';
import { trimOws } from './token.ts';
import {
  GrantExpiredError,
  GrantInvalidError,
  GrantScopeError,
} from './errors.ts';

/** Access a payment bought. */
export interface Grant {
  /** Random, 128 bits, base64url; names the grant (and its pod). */
  readonly id: string;
  /** Name of the route (pricing rule) the grant is valid for. */
  readonly route: string;
  /** When the grant was issued, ms since the epoch. */
  readonly issuedAt: number;
  /** When the grant stops being valid, ms since the epoch. */
  readonly expiresAt: number;
  /** Valid for one request only; the caller records its use. */
  readonly singleUse: boolean;
  /** Total paid for the grant, in `unit`. */
  readonly amount: number;
  /** Cashu unit of `amount`. */
  readonly unit: string;
  /**
   * The payment that bought or last lengthened the grant
   * ({@link paymentTag}): an owed payment's retry that presents this
   * grant finds itself applied already, and does not apply it twice.
   */
  readonly paidBy?: string;
}

/** Options of {@link GrantSigner}. */
export interface GrantSignerOptions {
  /** Current signing key, at least 32 bytes (UTF-8). */
  readonly key: string;
  /** Keys still accepted for verification. Default none. */
  readonly previousKeys?: readonly string[];
  /** Source of "now" for expiry. Default the system clock. */
  readonly clock?: Clock;
}

/** Prefix and version of every grant credential. */
export const GRANT_PREFIX = 'pgr1.';

/** Minimum key length in bytes; shorter keys are guessable. */
export const MIN_GRANT_KEY_BYTES = 32;

/** Credentials longer than this are refused before parsing (characters). */
const MAX_CREDENTIAL_LENGTH = 1024;

interface Payload {
  k: string;
  i: string;
  r: string;
  t: number;
  e: number;
  s: 0 | 1;
  a: number;
  u: string;
  /**
   * 1 on every credential issued since Paygress sets `__Host-` cookies
   * over https (see {@link readGrantCredential}); absent on older ones.
   */
  h?: 1;
  p?: string;
}

/** Issues and verifies grant credentials with HMAC-SHA256. */
export class GrantSigner {
  // Key objects are made once: building one per request is measurable.
  #key: KeyObject;
  #keyId: string;
  #keys: ReadonlyMap<string, readonly KeyObject[]>;
  #authenticated = new LRUCache<string, Payload>({ max: 10_000 });
  #clock: Clock;

  constructor(options: GrantSignerOptions) {
    const all = [options.key, ...(options.previousKeys ?? [])];
    for (const key of all) {
      if (Buffer.byteLength(key, 'utf8') < MIN_GRANT_KEY_BYTES) {
        throw new TypeError(
          `grant keys must be at least ${MIN_GRANT_KEY_BYTES} bytes`,
        );
      }
    }

    const keys = new Map<string, KeyObject[]>();
    for (const key of all) {
      const id = keyId(key);
      keys.set(id, [...(keys.get(id) ?? []), secretKey(key)]);
    }
    this.#key = secretKey(options.key);
    this.#keyId = keyId(options.key);
    this.#keys = keys;
    this.#clock = options.clock ?? systemClock;
  }

  /** The credential for `grant`, signed with the current key. */
  issue(grant: Grant): string {
    const payload: Payload = {
      k: this.#keyId,
      i: grant.id,
      r: grant.route,
      t: grant.issuedAt,
      e: grant.expiresAt,
      s: grant.singleUse ? 1 : 0,
      a: grant.amount,
      u: grant.unit,
      h: 1,
      ...(grant.paidBy !== undefined && { p: grant.paidBy }),
    };
    const body = GRANT_PREFIX + encode(JSON.stringify(payload));
    return `${body}.${mac(this.#key, body).toString('base64url')}`;
  }

  /**
   * The grant in `credential` if it is authentic, unexpired and for
   * `routeName`. Throws GrantInvalidError, GrantScopeError or
   * GrantExpiredError, in that order of checking. Single use is not
   * tracked here: the caller records spent grant ids.
   */
  verify(credential: string, routeName: string): Grant {
    const grant = this.authentic(credential);
    if (grant.route !== routeName) {
      throw new GrantScopeError(
        `this grant is for route ${grant.route}, not ${routeName}`,
      );
    }
    if (this.expired(grant)) {
      throw new GrantExpiredError('this grant has expired; pay again');
    }
    return grant;
  }

  /**
   * The grant in `credential` if it is authentic, for whatever route and
   * expired or not: what a payment with it may top up. Throws
   * GrantInvalidError.
   */
  authentic(credential: string): Grant {
    const grant = this.tryAuthentic(credential);
    if (grant === undefined) {
      throw new GrantInvalidError('the grant credential is not valid');
    }
    return grant;
  }

  /**
   * {@link authentic}, or undefined for a credential that is not: for
   * looking through many (a request's cookies) without an exception each.
   */
  tryAuthentic(credential: string): Grant | undefined {
    // A grant is presented again and again: its signature is checked once
    // and remembered (expiry and scope are still checked every time).
    let payload = this.#authenticated.get(credential);
    if (payload === undefined) {
      payload = this.#check(credential);
      if (payload === undefined) return undefined;
      this.#authenticated.set(credential, payload);
    }
    return toGrant(payload);
  }

  /**
   * Whether `credential` was issued before Paygress set `__Host-` cookies
   * over https, so a browser may still hold it under the plain name.
   * Authenticity is not checked here: what passes is checked as any
   * other credential.
   */
  predatesHostCookies(credential: string): boolean {
    if (credential.length > MAX_CREDENTIAL_LENGTH) return false;
    const encoded = credential.split('.')[1];
    const payload =
      encoded === undefined || !/^[A-Za-z0-9_-]+$/.test(encoded)
        ? undefined
        : parse(encoded);
    return payload !== undefined && payload.h === undefined;
  }

  /** Whether `grant` has expired by now. */
  expired(grant: Grant): boolean {
    return this.#clock.now() >= grant.expiresAt;
  }

  /** The payload of an authentic credential, or undefined. */
  #check(credential: string): Payload | undefined {
    if (credential.length > MAX_CREDENTIAL_LENGTH) return undefined;
    const parts = credential.split('.');
    if (parts.length !== 3 || `${parts[0]}.` !== GRANT_PREFIX) return undefined;
    const [, encoded = '', signature = ''] = parts;
    if (!/^[A-Za-z0-9_-]+$/.test(encoded)) return undefined;
    if (!/^[A-Za-z0-9_-]{43}$/.test(signature)) return undefined;

    const payload = parse(encoded);
    if (payload === undefined) return undefined;
    const keys = this.#keys.get(payload.k);
    if (keys === undefined) return undefined;

    const body = `${parts[0]}.${encoded}`;
    // Compare encoded strings so only the canonical base64url form passes.
    const given = Buffer.from(signature, 'ascii');
    const good = keys.some((key) =>
      timingSafeEqual(Buffer.from(mac(key, body).toString('base64url')), given),
    );
    return good ? payload : undefined;
  }
}

/**
 * The id of the grant a payment buys: 128 bits of sha256 over the
 * payment's id (a random UUID the store keeps), base64url (22
 * characters). A payment always names the same grant, so when its answer
 * was lost, or Paygress restarted while its pod was being made, the
 * retry finds the pod the first attempt made instead of making another.
 */
export function grantIdFor(paymentId: string): string {
  return createHash('sha256')
    .update('paygress grant\0')
    .update(paymentId)
    .digest()
    .subarray(0, 16)
    .toString('base64url');
}

/**
 * Names a payment in a grant it bought or lengthened: 96 bits of sha256
 * over its id, base64url (16 characters).
 */
export function paymentTag(paymentId: string): string {
  return createHash('sha256')
    .update('paygress payment\0')
    .update(paymentId)
    .digest()
    .subarray(0, 12)
    .toString('base64url');
}

/**
 * A new grant for `route`, bought by the payment `payment` (its id),
 * valid `seconds` from `now` (ms since epoch).
 */
export function createGrant(fields: {
  readonly payment: string;
  readonly route: string;
  readonly seconds: number;
  readonly singleUse: boolean;
  readonly amount: number;
  readonly unit: string;
  readonly now: number;
}): Grant {
  return {
    id: grantIdFor(fields.payment),
    route: fields.route,
    issuedAt: fields.now,
    expiresAt: fields.now + fields.seconds * 1000,
    singleUse: fields.singleUse,
    amount: fields.amount,
    unit: fields.unit,
    paidBy: paymentTag(fields.payment),
  };
}

/**
 * A top-up: `grant` with its expiry moved `addSeconds` later (from now if
 * it already lapsed), never beyond `maxSeconds` from `now`, and `addAmount`
 * added to what was paid. Same id, so the pod behind it keeps running.
 *
 * @param now Current time, ms since the epoch.
 * @param addAmount Net value of the top-up payment, in the grant's unit.
 *   Default 0.
 * @param paidBy The top-up payment's {@link paymentTag}. Default the
 *   grant's own.
 */
export function extendGrant(
  grant: Grant,
  addSeconds: number,
  maxSeconds: number,
  now: number,
  addAmount = 0,
  paidBy = grant.paidBy,
): Grant {
  const from = Math.max(grant.expiresAt, now);
  const expiresAt = Math.min(from + addSeconds * 1000, now + maxSeconds * 1000);
  return {
    ...grant,
    expiresAt: Math.max(expiresAt, grant.expiresAt),
    amount: grant.amount + addAmount,
    ...(paidBy !== undefined && { paidBy }),
  };
}

/**
 * The grant credential a request presents, and whether cookies held it:
 * then each cookie of the name, in order (a browser sends two of one name
 * when they differ in domain or path, the older first).
 */
export interface GrantCredential {
  readonly values: readonly string[];
  readonly cookie: boolean;
}

/**
 * The name of the grant cookie over https. A browser keeps a `__Host-`
 * cookie only from the host itself, over https, with `Secure`, `Path=/`
 * and no `Domain`: a site on a sibling domain cannot plant one
 * (cookie tossing), as it can a cookie of any other name.
 */
export function grantCookieName(cookieName: string, https: boolean): string {
  return https ? `__Host-${cookieName}` : cookieName;
}

/**
 * The grant credential a request presents, if any: `Authorization: Bearer
 * pgr1.…` (scheme in any case) first, then the grant cookies. Cashu
 * tokens sent as bearer values are not grants and are ignored here.
 *
 * Over https the cookies are those of the `__Host-` name
 * ({@link grantCookieName}), then those of the plain name that
 * `predatesHostCookies` admits: credentials issued before Paygress set
 * `__Host-` cookies, which browsers keep under the plain name until they
 * expire. A grant issued since is never read from the plain name there,
 * so one a sibling domain planted is not used.
 *
 * @param headers Request headers with lower-cased names.
 */
export function readGrantCredential(
  headers: Readonly<Record<string, string>>,
  cookieName: string,
  https = false,
  predatesHostCookies?: (credential: string) => boolean,
): GrantCredential | undefined {
  // Spaces and tabs only, as the proxies' filters read them (trimOws).
  const auth = /^[ \t]*bearer[ \t]+([^ \t]+)[ \t]*$/i.exec(
    headers['authorization'] ?? '',
  );
  if (auth?.[1]?.startsWith(GRANT_PREFIX)) {
    return { values: [auth[1]], cookie: false };
  }

  const cookies = headers['cookie'];
  if (cookies === undefined) return undefined;
  const name = grantCookieName(cookieName, https);
  // The plain name too over https, when earlier credentials may serve.
  const older = https ? predatesHostCookies : undefined;
  const values: string[] = [];
  const plain: string[] = [];
  // Every one, in order: a count would let planted cookies hide the
  // payer's own. The listener's header limit (32 KiB) bounds them, and one
  // that names no key of ours is dropped before any MAC is computed.
  for (const pair of cookies.split(';')) {
    const eq = pair.indexOf('=');
    if (eq < 0) continue;
    const key = trimOws(pair.slice(0, eq));
    const into =
      key === name
        ? values
        : older !== undefined && key === cookieName
          ? plain
          : undefined;
    if (into === undefined) continue;
    const value = trimOws(pair.slice(eq + 1)).replace(/^"(.*)"$/, '$1');
    if (value.startsWith(GRANT_PREFIX)) into.push(value);
  }
  for (const value of plain) if (older?.(value)) values.push(value);
  return values.length > 0 ? { values, cookie: true } : undefined;
}

function secretKey(key: string): KeyObject {
  return createSecretKey(Buffer.from(key, 'utf8'));
}

/** First 8 hex digits of sha256(key): names a key without revealing it. */
export function keyId(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex').slice(0, 8);
}

function mac(key: KeyObject, body: string): Buffer {
  return createHmac('sha256', key).update(body, 'ascii').digest();
}

function encode(json: string): string {
  return Buffer.from(json, 'utf8').toString('base64url');
}

function parse(encoded: string): Payload | undefined {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(encoded, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;

  const p = value as Record<string, unknown>;
  const ok =
    typeof p.k === 'string' &&
    typeof p.i === 'string' &&
    typeof p.r === 'string' &&
    typeof p.u === 'string' &&
    Number.isSafeInteger(p.t) &&
    Number.isSafeInteger(p.e) &&
    Number.isSafeInteger(p.a) &&
    (p.s === 0 || p.s === 1) &&
    (p.h === undefined || p.h === 1) &&
    (p.p === undefined || typeof p.p === 'string');
  return ok ? (p as unknown as Payload) : undefined;
}

function toGrant(p: Payload): Grant {
  return Object.freeze({
    id: p.i,
    route: p.r,
    issuedAt: p.t,
    expiresAt: p.e,
    singleUse: p.s === 1,
    amount: p.a,
    unit: p.u,
    ...(p.p !== undefined && { paidBy: p.p }),
  });
}
