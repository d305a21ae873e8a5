/**
 * Which price a request pays: rules matched by host, path and method, first
 * match wins, the default price otherwise. Pure: no I/O, no clock.
 */
import type { AuthRequest } from './model.ts';
import {
  InsufficientAmountError,
  InternalError,
  RequestAmbiguousError,
} from './errors.ts';

/** What a route costs. */
export type Charge =
  | { readonly kind: 'free' }
  | {
      readonly kind: 'request';
      /** Whole units of `unit` per request. */
      readonly amount: number;
      /** Cashu unit, e.g. `sat`. */
      readonly unit: string;
    }
  | {
      readonly kind: 'rate';
      /** Whole units of `unit` that buy `perSeconds` of access. */
      readonly amount: number;
      /** Cashu unit, e.g. `sat`. */
      readonly unit: string;
      /** Seconds of access that `amount` buys. */
      readonly perSeconds: number;
      /** Shortest grant a payment may buy, in seconds. */
      readonly minSeconds: number;
      /** Longest a grant may run from now, in seconds, top-ups included. */
      readonly maxSeconds: number;
    };

/** How a rule's `path` is compared with the request path. */
export type PathMatch = 'exact' | 'prefix' | 'glob';

/** Which requests a rule applies to; an absent field matches anything. */
export interface RouteMatch {
  /** Host, exact and case-insensitive, or `*.example.com` for subdomains. */
  readonly host?: string;
  /** Path pattern starting with `/`, read according to `pathMatch`. */
  readonly path?: string;
  /**
   * `exact`; `prefix` on segment boundaries (`/a` matches `/a` and `/a/b`,
   * not `/ab`); `glob` where `*` is one segment and `**` any number.
   * Default `prefix`.
   */
  readonly pathMatch: PathMatch;
  /** Upper-case HTTP methods; absent means every method. */
  readonly methods?: readonly string[];
}

/** One pricing rule as configured. */
export interface PricingRule {
  /** Unique name; the route name in grants, logs and metrics. */
  readonly name: string;
  readonly match: RouteMatch;
  readonly charge: Charge;
}

/** A mint we accept tokens from and the units it may pay in. */
export interface MintOffer {
  /** Normalised mint URL. */
  readonly url: string;
  /** Cashu units accepted from this mint, e.g. `['sat']`. */
  readonly units: readonly string[];
}

/** The route a request fell into and what it costs there. */
export interface PricedRoute {
  /** Name of the matched rule, or `default`. */
  readonly name: string;
  readonly charge: Charge;
  /** Mints that may pay this charge (those offering its unit); empty if free. */
  readonly mints: readonly string[];
}

/** Options of {@link Pricing}. */
export interface PricingOptions {
  /**
   * Honour `X-Required-Amount` / `X-Required-Unit` from the request. Only
   * safe when the ingress sets or strips these headers, since a client can
   * send them too. Default in configuration: false.
   */
  readonly trustedAmountHeader: boolean;
  /** Mints we accept, with their units. */
  readonly mints: readonly MintOffer[];
}

/** Name of the route that requests matching no rule fall into. */
export const DEFAULT_ROUTE = 'default';

const AMOUNT_HEADER = 'x-required-amount';
const UNIT_HEADER = 'x-required-unit';

interface CompiledRule {
  /** The rule's route, built once: the same object for every request. */
  readonly route: PricedRoute;
  readonly matches: (request: AuthRequest, path: string) => boolean;
}

/** Prices requests by the configured rules. */
export class Pricing {
  #rules: readonly CompiledRule[];
  #default: PricedRoute;
  #options: PricingOptions;

  /**
   * @param rules Rules in order; the first that matches wins.
   * @param defaultPrice Per-request price of requests no rule matches.
   */
  constructor(
    rules: readonly PricingRule[],
    defaultPrice: { readonly amount: number; readonly unit: string },
    options: PricingOptions,
  ) {
    this.#options = options;
    this.#rules = rules.map((rule) => ({
      route: this.#priced(rule.name, rule.charge),
      matches: compile(rule),
    }));
    const charge: Charge = { kind: 'request', ...defaultPrice };
    this.#default = this.#priced(DEFAULT_ROUTE, charge);
  }

  /**
   * The route of `request` and its charge. Throws InternalError (our fault)
   * when the amount header is trusted but its value is unusable: charging
   * nothing would give access away, charging a guess would be wrong.
   * A configured rule (or the default) answers with the same object every
   * time, so callers may cache what they derive from a route; a price
   * taken from `X-Required-Amount` is a new object per request.
   */
  route(request: AuthRequest): PricedRoute {
    if (/[a-z]/.test(request.method)) {
      throw new RequestAmbiguousError(
        'the method is not upper-case; methods are case-sensitive, and some servers read it upper-cased and others as sent',
      );
    }
    if (request.path.includes('#')) {
      throw new RequestAmbiguousError(
        'the path has a raw #, where some servers end the path and others do not (nginx passes it on as sent); send it percent-encoded as %23',
      );
    }
    const readings = pathReadings(request.path);
    if (readings === undefined) {
      throw new RequestAmbiguousError(
        'the path has a dot segment (. or ..), which proxies and servers resolve differently; send it resolved',
      );
    }
    const route = this.#ruleFor(request, readings[0]!);
    for (let i = 1; i < readings.length; i++) {
      if (this.#ruleFor(request, readings[i]!) !== route) {
        throw new RequestAmbiguousError(
          'the path reads as different routes depending on how a proxy or server decodes it (encoded slashes, path parameters or backslashes); send it plainly',
        );
      }
    }

    if (!this.#options.trustedAmountHeader) return route;
    if (route.charge.kind !== 'request') return route;
    if (request.headers[AMOUNT_HEADER] === undefined) return route;
    return this.#fromHeader(route, request.headers);
  }

  #ruleFor(request: AuthRequest, path: string): PricedRoute {
    return (
      this.#rules.find((c) => c.matches(request, path))?.route ?? this.#default
    );
  }

  #fromHeader(
    route: PricedRoute,
    headers: Readonly<Record<string, string>>,
  ): PricedRoute {
    const rawAmount = (headers[AMOUNT_HEADER] ?? '').trim();
    const amount = /^[1-9][0-9]{0,15}$/.test(rawAmount)
      ? Number(rawAmount)
      : NaN;
    if (!Number.isSafeInteger(amount)) {
      throw new InternalError(
        'X-Required-Amount from the trusted upstream is not a positive integer',
      );
    }

    const charge = route.charge as { unit: string };
    const unit = (headers[UNIT_HEADER] ?? charge.unit).trim();
    const priced = this.#priced(route.name, { kind: 'request', amount, unit });
    if (priced.mints.length === 0) {
      throw new InternalError(
        'X-Required-Unit from the trusted upstream names a unit no configured mint offers',
      );
    }
    return priced;
  }

  #priced(name: string, charge: Charge): PricedRoute {
    const mints =
      charge.kind === 'free'
        ? []
        : this.#options.mints
            .filter((m) => m.units.includes(charge.unit))
            .map((m) => m.url);
    return Object.freeze({ name, charge, mints: Object.freeze(mints) });
  }
}

/**
 * Seconds of access `netAmount` buys on a rate route, capped at
 * `maxSeconds`. Throws InsufficientAmountError below
 * {@link minimumPayment}: rounding a small payment up to `minSeconds` would
 * sell time below the rate, top-ups included.
 */
export function grantDuration(charge: Charge, netAmount: number): number {
  if (charge.kind !== 'rate') {
    throw new TypeError(
      `grantDuration needs a rate charge, not ${charge.kind}`,
    );
  }
  if (netAmount < minimumPayment(charge)) {
    throw new InsufficientAmountError(
      `a payment of at least ${minimumPayment(charge)} ${charge.unit} is required, ${netAmount} received`,
    );
  }

  const seconds = Math.floor((netAmount * charge.perSeconds) / charge.amount);
  return Math.min(Math.max(seconds, charge.minSeconds), charge.maxSeconds);
}

/**
 * The smallest payment a route accepts, in its unit: 0 when free, the
 * price per request, or what buys `minSeconds` on a rate route (rounded up).
 */
export function minimumPayment(charge: Charge): number {
  if (charge.kind === 'free') return 0;
  if (charge.kind === 'request') return charge.amount;
  return Math.ceil((charge.minSeconds * charge.amount) / charge.perSeconds);
}

/**
 * The ways proxies and servers in front of an upstream may read a request
 * path, each with repeated slashes merged:
 *
 * - escapes decoded once, but not those of `/`, `\` and `;` (so
 *   `/%70remium` is `/premium`, as nginx and most servers read it);
 * - every escape decoded, `%2F` becoming a segment break (nginx's `$uri`);
 * - the first, with path parameters (`;…` in a segment) dropped, as
 *   servlet containers do;
 * - the first two with `\` as a segment break, as WHATWG URL parsers
 *   (Node's `URL`, Deno, Bun) and Windows servers read it.
 *
 * Undefined when any reading has a dot segment (`.` or `..`, encoded or
 * not, or `..;`): nginx resolves them, most application routers do not,
 * and the upstream gets the path as sent, so no single reading is right.
 * Clients resolve dot segments before sending; a path that still has
 * them is refused, and so is one whose readings fall into different
 * routes: a path a proxy routes one way and an upstream serves another
 * must not be priced by the cheaper reading.
 */
export function pathReadings(path: string): string[] | undefined {
  if (!/[%;.\\]|\/\//.test(path)) return [path];
  const kept = decodeKeepingBreaks(path);
  const decoded = decodePath(path);
  const readings = [
    kept.split('/'),
    decoded.split('/'),
    kept.split('/').map((segment) => segment.split(';', 1)[0]!),
    kept.split(/[/\\]/),
    decoded.split(/[/\\]/),
  ];
  const dots = (segment: string) => segment === '.' || segment === '..';
  if (readings.some((segments) => segments.some(dots))) return undefined;
  return [...new Set(readings.map(mergeSlashes))];
}

/** The first reading of {@link pathReadings}: how rule paths are read. */
export function canonicalPath(path: string): string {
  return mergeSlashes(decodeKeepingBreaks(path).split('/'));
}

/** Decoded once, but `%2F`, `%5C` and `%3B` kept as they are. */
function decodeKeepingBreaks(path: string): string {
  return decodePath(path.replace(/%(2f|5c|3b)/gi, '%25$1'));
}

function mergeSlashes(segments: readonly string[]): string {
  const out = segments.filter((segment) => segment !== '');
  const trailing = segments.length > 1 && segments.at(-1) === '' ? '/' : '';
  return out.length === 0 ? '/' : `/${out.join('/')}${trailing}`;
}

const UTF8 = new TextDecoder();

/**
 * Percent-decoded once, byte by byte as nginx does: each run of escapes is
 * read as UTF-8, an invalid sequence becoming U+FFFD without undoing the
 * valid ones around it.
 */
function decodePath(path: string): string {
  if (!path.includes('%')) return path;
  return path.replace(/(?:%[0-9a-f]{2})+/gi, (run) =>
    UTF8.decode(Buffer.from(run.replaceAll('%', ''), 'hex')),
  );
}

/**
 * True when upstreams may split or read the path differently than we do:
 * an encoded slash, backslash or semicolon, a raw backslash, or path
 * parameters. Free rules never match such paths, so no encoding trick
 * turns a priced path into a free one.
 */
function ambiguousPath(path: string): boolean {
  return /%2f|%5c|%3b|\\|;/i.test(path);
}

function compile(rule: PricingRule): CompiledRule['matches'] {
  const { host, pathMatch, methods } = rule.match;
  // Read as request paths are: `/reports%20v2` is `/reports v2`.
  const path =
    rule.match.path === undefined ? undefined : canonicalPath(rule.match.path);
  const hostOk = host === undefined ? () => true : hostMatcher(host);
  const pathOk = path === undefined ? () => true : pathMatcher(path, pathMatch);
  const free = rule.charge.kind === 'free';

  return (request, canonical) =>
    (methods === undefined || methods.includes(request.method)) &&
    hostOk(request.host) &&
    pathOk(canonical) &&
    !(free && ambiguousPath(request.path));
}

function hostMatcher(pattern: string): (host: string) => boolean {
  const wanted = bareHost(pattern);
  if (!wanted.startsWith('*.')) return (host) => bareHost(host) === wanted;

  const suffix = wanted.slice(1);
  return (host) => {
    const h = bareHost(host);
    return h.endsWith(suffix) && h.length > suffix.length;
  };
}

/** Lower case without a trailing dot: `API.example.com.` is the same host. */
function bareHost(host: string): string {
  return host.toLowerCase().replace(/\.$/, '');
}

function pathMatcher(
  pattern: string,
  mode: PathMatch,
): (path: string) => boolean {
  if (mode === 'exact') return (path) => path === pattern;
  if (mode === 'prefix') {
    const base = pattern.replace(/\/+$/, '');
    return (path) =>
      base === '' || path === base || path.startsWith(base + '/');
  }

  const want = segmentsOf(pattern);
  return (path) => globMatch(want, segmentsOf(path));
}

function segmentsOf(path: string): string[] {
  return path.split('/').filter((s) => s !== '');
}

/**
 * Whether `got` matches `want`, where `*` is one segment and `**` any
 * number. Greedy with backtracking to the last `**` only: time is at most
 * the product of the two lengths, however many `**` the pattern has (a
 * recursive search was exponential in them, and a long path stalled the
 * process).
 */
function globMatch(want: readonly string[], got: readonly string[]): boolean {
  let w = 0;
  let g = 0;
  let star = -1;
  let resume = 0;
  while (g < got.length) {
    const part = want[w];
    if (part === '**') {
      star = w++;
      resume = g;
    } else if (part !== undefined && (part === '*' || part === got[g])) {
      w++;
      g++;
    } else if (star !== -1) {
      w = star + 1;
      g = ++resume;
    } else {
      return false;
    }
  }
  while (want[w] === '**') w++;
  return w === want.length;
}
