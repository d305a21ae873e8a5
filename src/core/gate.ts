/**
 * The gate: one decision per request, whatever protocol carried it.
 *
 *   price → credential → (grant | token: size, decode, mint, unit, keysets,
 *   net amount) → redeem → grant → provision → allow
 *
 * Each step can stop the request with its own reason code. Faults of the
 * mint, the store or the cluster fail closed: the request is refused as
 * our fault, never allowed.
 */
import { LRUCache } from 'lru-cache';
import {
  GrantExpiredError,
  GrantScopeError,
  InsufficientAmountError,
  KeysetUnknownError,
  MintNotAllowedError,
  PaygressError,
  ProvisionFailedError,
  RequestAmbiguousError,
  TokenReplayedError,
  UnitMismatchError,
  toPaygressError,
  type ReasonCode,
} from './errors.ts';
import {
  createGrant,
  extendGrant,
  grantCookieName,
  grantIdFor,
  paymentTag,
  readGrantCredential,
  type Grant,
  type GrantCredential,
  type GrantSigner,
} from './grants.ts';
import { tryNormalizeMintUrl } from './mint-url.ts';
import type {
  AuthRequest,
  Decider,
  Decision,
  Deny,
  Allow,
  Price,
} from './model.ts';
import { paymentRequestFor } from './payment-request.ts';
import type {
  Clock,
  KeysetInfo,
  MintGateway,
  Provisioner,
  WalletStore,
} from './ports.ts';
import {
  grantDuration,
  minimumPayment,
  type Charge,
  type Pricing,
  type PricedRoute,
} from './pricing.ts';
import type { Redeemer, Redemption } from './redeemer.ts';
import {
  encodeToken,
  findToken,
  parseToken,
  readTokenHeader,
  type ParsedToken,
  type TokenHeader,
} from './token.ts';

/** What a paying request's grant credentials hold; see #presentedWithPayment. */
interface Presented {
  readonly live?: Grant;
  readonly authentic: readonly Grant[];
}

/** Options of {@link Gate}. */
export interface GateOptions {
  readonly pricing: Pricing;
  readonly gateway: MintGateway;
  readonly redeemer: Redeemer;
  readonly store: WalletStore;
  readonly grants: GrantSigner;
  readonly clock: Clock;
  /** Longest token accepted, in characters. Default 16384. */
  readonly maxTokenLength?: number;
  /** Cookie that may carry a grant credential. Default `paygress_grant`. */
  readonly grantCookie?: string;
  /** Creates pods for grants; absent when provisioning is off. */
  readonly provisioner?: Provisioner;
  /**
   * Whether redeemed proofs can be handed back to a payer. False when they
   * are locked to the operator's key: a failed provisioning then leaves a
   * credit on the grant instead of a refund token. Default true.
   */
  readonly refunds?: boolean;
  /**
   * How long a per-request grant (and any pod it provisions) lives, in
   * seconds. Default 300.
   */
  readonly requestGrantSeconds?: number;
}

/** Client header carrying a grant credential after a rate payment. */
export const GRANT_HEADER = 'X-Paygress-Grant';

/** Grant ids whose pod is known to exist, remembered at most. */
const CONFIRMED_PODS = 100_000;

/** How long a pod once confirmed is taken to exist, in ms. */
const POD_RECHECK_MS = 60_000;

/**
 * How long a failed confirmation is answered from memory, in ms: the
 * Retry-After of a PAYGRESS_PROVISION_FAILED refusal.
 */
const POD_RETRY_MS = 5_000;

/**
 * How long after a refund a pod its failed create may yet make is looked
 * for and deleted, in ms. The API server finishes a create within its
 * request timeout (a minute by default) or not at all: ten minutes has
 * room, and keeps the list a flood of refunds can grow short.
 */
const RELEASE_WATCH_MS = 10 * 60_000;

/**
 * How long a credit stays good: what a payment leaves when its pod cannot
 * be made and its proofs cannot be handed back. It is used once, and what
 * it buys (one request, or a grant's time) starts when its pod is made,
 * so a cluster down for hours takes none of it; a week to come back.
 */
const CREDIT_SECONDS = 7 * 24 * 3600;

/** Frozen allows of grants in use, kept at most. */
const COVERED_ALLOWS = 10_000;

/** Payments and credits remembered as answered close to a deadline. */
const SENT_LATE = 10_000;

export class Gate implements Decider {
  readonly #o: Required<Omit<GateOptions, 'provisioner'>> &
    Pick<GateOptions, 'provisioner'>;
  // Pods created or found by this process lately: a grant request for one
  // of them needs no API call. Past POD_RECHECK_MS (or after a restart) the
  // next request confirms again, which makes a pod that vanished (deleted
  // by hand, its node lost) anew for the time still paid.
  readonly #confirmed: LRUCache<string, true>;
  // The grant each paid decision gave: if its answer is lost, the store
  // keeps it for the payment's retry (see #sameGrantAgain).
  readonly #applied = new WeakMap<Decision, string>();
  // Confirmations under way, and those that failed lately (by grant id).
  readonly #confirming = new Map<string, Promise<void>>();
  readonly #unconfirmed: LRUCache<string, PaygressError>;
  // The refusal of a request without a token depends on its route alone:
  // built once per route, frozen so adapters may cache its rendering too.
  /** Each route's price to pay, and the keysets it was worked out from. */
  readonly #prices = new WeakMap<
    PricedRoute,
    {
      readonly from: readonly (readonly KeysetInfo[] | undefined)[];
      readonly price: Price;
    }
  >();
  readonly #unpaid = new WeakMap<
    PricedRoute,
    { readonly price: Price; readonly refusal: Deny }
  >();
  // Likewise the allow of a request covered by a grant depends on the
  // grant and its pod alone, and a paying client repeats it many times.
  readonly #covered = new LRUCache<string, Allow>({ max: COVERED_ALLOWS });
  // Payments (by redemption id) and credits (by grant id) whose allow
  // went out close to the caller's deadline and was kept owed: in memory,
  // so a restart forgets them (see sentLate).
  readonly #sentLate = new LRUCache<string, true>({ max: SENT_LATE });
  readonly #predatesHostCookies = (credential: string): boolean =>
    this.#o.grants.predatesHostCookies(credential);

  constructor(options: GateOptions) {
    this.#o = {
      maxTokenLength: 16384,
      grantCookie: 'paygress_grant',
      requestGrantSeconds: 300,
      refunds: true,
      ...options,
    };
    const clock = this.#o.clock;
    // On Paygress's clock, read at every look: lru-cache otherwise keeps
    // the time it read for a millisecond of real time, so a look just
    // after the clock moved (a test's, or a system clock stepped) saw
    // the time before it.
    const time = { perf: { now: () => clock.now() }, ttlResolution: 0 };
    this.#confirmed = new LRUCache<string, true>({
      max: CONFIRMED_PODS,
      ttl: POD_RECHECK_MS,
      ...time,
    });
    this.#unconfirmed = new LRUCache<string, PaygressError>({
      max: CONFIRMED_PODS,
      ttl: POD_RETRY_MS,
      ...time,
    });
  }

  undelivered(decision: Decision): void {
    const id = decision.redemptionId;
    if (id !== undefined) {
      const grant = this.#applied.get(decision);
      // A top-up handed back lengthened nothing: retried, it is a payment
      // like any other, refunded again if the pod still cannot be reached.
      const handedBack =
        decision.kind === 'deny' &&
        decision.refund !== undefined &&
        grant !== grantIdFor(id);
      this.#o.store.undeliver(id, handedBack ? null : grant);
    }
    if (decision.kind === 'allow' && decision.creditId !== undefined) {
      this.#o.store.unuseGrant(decision.creditId);
    }
  }

  sentLate(decision: Decision): boolean {
    const id =
      decision.redemptionId ??
      (decision.kind === 'allow' ? decision.creditId : undefined);
    if (id === undefined || this.#sentLate.has(id)) return false;
    this.undelivered(decision);
    this.#sentLate.set(id, true);
    return true;
  }

  async decide(request: AuthRequest): Promise<Decision> {
    let route: PricedRoute | undefined;
    try {
      if (request.ambiguity !== undefined) {
        throw new RequestAmbiguousError(request.ambiguity);
      }
      route = this.#o.pricing.route(request);
      if (route.charge.kind === 'free') return allow(0, '', {});
      return await this.#paid(request, route);
    } catch (err) {
      const refusal = toPaygressError(err);
      return deny(refusal, this.#price(route, refusal));
    }
  }

  async #paid(request: AuthRequest, route: PricedRoute): Promise<Decision> {
    const raw = findToken(request.headers);
    // A plain-name cookie over https, of a grant from before `__Host-`
    // cookies, serves the requests it covers, but a payment never tops it
    // up: a sibling domain may have planted it, and the top-up's answer
    // would hand its grant back to the payer as a `__Host-` cookie.
    const credential = readGrantCredential(
      request.headers,
      this.#o.grantCookie,
      request.scheme === 'https',
      raw === undefined ? this.#predatesHostCookies : undefined,
    );
    if (raw === undefined) {
      if (credential === undefined) return this.#paymentRequired(route);
      return this.#allowOnGrant(
        request,
        this.#verified(credential, route),
        route,
      );
    }
    const presented =
      credential === undefined
        ? { authentic: [] }
        : this.#presentedWithPayment(credential, route);
    let token: ParsedToken;
    try {
      token = await this.#check(raw, route);
    } catch (err) {
      const owed = await this.#owedOnOtherTerms(raw, route, err);
      if (owed !== undefined) return owed;
      throw err;
    }
    const redemption = await this.#o.redeemer.redeem(
      token,
      minimumPayment(route.charge),
    );
    try {
      return await this.#afterPayment(
        request,
        route,
        redemption,
        token,
        presented,
      );
    } catch (err) {
      // Nothing of this payment goes out: the payer is owed it.
      this.#o.store.abandon(redemption.id);
      throw err;
    }
  }

  /**
   * The grants a paying request presents, checked before anything is
   * redeemed: `live` is the one the payment tops up, this route's first
   * unexpired one. A grant the payment cannot top up (another route's,
   * like a cookie the browser sends everywhere; an expired one; a
   * single-request credit, kept for its own request; a cookie that is no
   * grant of this Paygress's, signed with a key since removed, which the
   * browser would send until it expires) is set aside, and the payment
   * buys a grant of its own, unless it is the retry of a payment that
   * bought one of them before (see #sameGrantAgain), which `authentic`
   * lists. A tampered credential sent as `Authorization` is refused all
   * the same.
   */
  #presentedWithPayment(
    credential: GrantCredential,
    route: PricedRoute,
  ): Presented {
    let live: Grant | undefined;
    const authentic: Grant[] = [];
    for (const value of credential.values) {
      // A header credential that does not verify is refused; a cookie,
      // looked at among any number, is passed over.
      const grant = credential.cookie
        ? this.#o.grants.tryAuthentic(value)
        : this.#o.grants.authentic(value);
      if (grant === undefined || grant.singleUse) continue;
      authentic.push(grant);
      if (grant.route === route.name && !this.#o.grants.expired(grant)) {
        live ??= grant;
      }
    }
    return live === undefined ? { authentic } : { live, authentic };
  }

  /**
   * The grant a request without a payment presents: of several cookies,
   * the first that holds this route's unexpired grant (another may be a
   * cookie of another deployment, with another domain, which Paygress's
   * own cannot replace). None: why the first that is Paygress's is not
   * good here, or why the first is not Paygress's.
   */
  #verified(credential: GrantCredential, route: PricedRoute): Grant {
    const { values } = credential;
    // The credential whose refusal says why, if none is good here.
    let why = values[0]!;
    if (values.length > 1) {
      let ours: Grant | undefined;
      for (const value of values) {
        const grant = this.#o.grants.tryAuthentic(value);
        if (grant === undefined) continue;
        if (grant.route === route.name && !this.#o.grants.expired(grant)) {
          return grant;
        }
        if (ours === undefined) [why, ours] = [value, grant];
      }
    }
    return this.#o.grants.verify(why, route.name);
  }

  /**
   * The most common refusal of all, so it costs no exception (and stack
   * trace) and no encoding per request: one frozen decision per route and
   * amount to pay.
   */
  #paymentRequired(route: PricedRoute): Deny {
    const price = this.#price(route)!;
    const cached = this.#unpaid.get(route);
    if (cached?.price === price) return cached.refusal;
    const base = minimumPayment(route.charge);
    const fees =
      price.amount > base
        ? ` (${base} ${price.unit} and ${price.amount - base} ${price.unit} of the mint's input fees)`
        : '';
    const refusal = Object.freeze(
      deny(
        {
          code: 'PAYGRESS_PAYMENT_REQUIRED',
          fault: 'payer',
          message: `payment required: send a Cashu token of ${price.amount} ${price.unit}${fees} in X-Cashu${rateTerms(route.charge)}`,
        },
        price,
      ),
    );
    this.#unpaid.set(route, { price, refusal });
    return refusal;
  }

  /**
   * What a refusal asks the payer for: the route's price, plus the input
   * fees (NUT-02) the swap of a token of the fewest proofs costs at the
   * dearest of the route's mints, by the keysets last fetched (none known
   * yet: no fee). A wallet that pays exactly this is not refused as short.
   */
  #price(
    route: PricedRoute | undefined,
    refusal?: PaygressError,
  ): Price | undefined {
    if (route === undefined || route.charge.kind === 'free') return undefined;
    if (refusal instanceof InsufficientAmountError && refusal.asked) {
      const usual = this.#price(route)!;
      return refusal.asked > usual.amount
        ? Object.freeze({ ...usual, amount: refusal.asked })
        : usual;
    }
    const gateway = this.#o.gateway;
    const cached = this.#prices.get(route);
    if (cached !== undefined && this.#stillKnown(route.mints, cached.from)) {
      return cached.price;
    }
    const { unit } = route.charge;
    const from = route.mints.map((mint) => gateway.knownKeysets(mint));
    let ppk = 0;
    for (const keyset of from.flat()) {
      if (keyset?.active && keyset.unit === unit) {
        ppk = Math.max(ppk, keyset.inputFeePpk);
      }
    }
    const price: Price = Object.freeze({
      amount: withInputFees(minimumPayment(route.charge), ppk),
      unit,
      mints: route.mints,
    });
    this.#prices.set(route, { from, price });
    return price;
  }

  /**
   * Whether the gateway still holds these keyset lists. A loop, not
   * every(): it runs for every refusal.
   */
  #stillKnown(
    mints: readonly string[],
    from: readonly (readonly KeysetInfo[] | undefined)[],
  ): boolean {
    for (let i = 0; i < mints.length; i++) {
      if (this.#o.gateway.knownKeysets(mints[i]!) !== from[i]) return false;
    }
    return true;
  }

  /**
   * A request covered by a grant alone: a credit (single-request grant)
   * as {@link #allowOnCredit} says, any other on its pod.
   */
  async #allowOnGrant(
    request: AuthRequest,
    grant: Grant,
    route: PricedRoute,
  ): Promise<Allow> {
    if (grant.singleUse) return this.#allowOnCredit(request, grant, route);
    const pod = await this.#podFor(grant, 'use');
    const key = `${grant.id}/${pod}`;
    let covered = this.#covered.get(key);
    if (covered === undefined) {
      covered = Object.freeze(allow(0, grant.unit, {}, grant.id, pod));
      this.#covered.set(key, covered);
    }
    return covered;
  }

  /** Every check that needs no mint round trip beyond its keyset list. */
  async #check(raw: string, route: PricedRoute): Promise<ParsedToken> {
    const header = readTokenHeader(raw, this.#o.maxTokenLength);

    const mint = tryNormalizeMintUrl(header.mint);
    if (mint === undefined || !route.mints.includes(mint)) {
      throw new MintNotAllowedError(
        `tokens from this mint are not accepted here; use one of: ${route.mints.join(', ')}`,
      );
    }
    const unit = unitOf(route.charge);
    if (header.unit !== unit) {
      throw new UnitMismatchError(
        `token is in ${header.unit}; this route is priced in ${unit}`,
      );
    }
    // Gross value is an upper bound of the net value: refuse small tokens
    // before asking the mint anything.
    const price = minimumPayment(route.charge);
    if (header.amount < price) throw insufficient(price, unit, header.amount);

    const { token, keysets } = await this.#decode({ ...header, mint });
    const fee = fees(token, keysets, unit);
    const net = token.amount - fee;
    if (net < price) {
      // A wallet paying what the request asked in more proofs than the
      // fewest pays more fees: ask for what a token of as many proofs
      // needs, not the same amount again.
      const count = token.proofs.length;
      throw new InsufficientAmountError(
        `token is worth ${net} ${unit} after the mint's input fees (${fee} ${unit} for its ${count} proofs); this request costs ${price} ${unit}: send ${price + fee} ${unit} in at most ${count} proofs`,
        { asked: price + fee },
      );
    }
    return token;
  }

  /**
   * A token refused as too little or in another unit that is a payment
   * owed (redeemed, its answer lost) from before the price or unit
   * changed: not a new payment to refuse as such. Its value is handed
   * back where it can be; locked to the operator, it stays owed and the
   * refusal says so. Undefined for any other token. Only asked while a
   * payment is owed at all: decoding a token costs what its refusal
   * otherwise would not.
   */
  async #owedOnOtherTerms(
    raw: string,
    route: PricedRoute,
    err: unknown,
  ): Promise<Decision | undefined> {
    if (
      !(
        err instanceof InsufficientAmountError ||
        err instanceof UnitMismatchError
      ) ||
      this.#o.store.owedCount() === 0
    ) {
      return undefined;
    }
    let token: ParsedToken;
    try {
      const header = readTokenHeader(raw, this.#o.maxTokenLength);
      const mint = tryNormalizeMintUrl(header.mint);
      if (mint === undefined || !route.mints.includes(mint)) return undefined;
      ({ token } = await this.#decode({ ...header, mint }));
    } catch {
      return undefined;
    }
    const owed = this.#o.store.deliver(token.ys, {
      mint: token.mint,
      unit: token.unit,
      minimum: 0,
    });
    if (owed === undefined || owed === 'delivering') return undefined;
    const paid = `this token paid ${owed.amount} ${owed.unit} earlier and its answer was lost`;
    // Handed back only if the payer can have had nothing of it: not an
    // allow sent close to a deadline (it may have arrived), nor a top-up
    // that lengthened another grant (its time stands). A new grant's pod
    // made before the answer was lost is released with the money.
    const own = grantIdFor(owed.id);
    const refundable =
      this.#o.refunds &&
      !this.#sentLate.has(owed.id) &&
      (owed.grant === undefined || owed.grant === own);
    try {
      const releaseUntil =
        owed.grant === own ? this.#o.clock.now() + RELEASE_WATCH_MS : undefined;
      const refund = refundable
        ? this.#refund(owed, token, route, err, releaseUntil)
        : undefined;
      if (refund !== undefined) {
        if (releaseUntil !== undefined) {
          void this.#o.provisioner?.release(own, releaseUntil);
        }
        return {
          ...refund,
          message: `${err.message}; ${paid}, and it does not pay for this request as it is now: the payment is returned in X-Cashu`,
          redemptionId: owed.id,
        };
      }
    } catch (failure) {
      this.#o.store.abandon(owed.id);
      throw failure;
    }
    this.#o.store.abandon(owed.id);
    const refused = deny(err, this.#price(route, err));
    return {
      ...refused,
      message: `${refused.message}; ${paid}: it stays owed to this token, for a request that costs no more`,
    };
  }

  /**
   * Decodes against the mint's keysets, fetching them again once when the
   * token names one we have not seen (the mint may have rotated its keys;
   * the gateway limits how often that refetch really happens).
   */
  async #decode(
    header: TokenHeader,
  ): Promise<{ token: ParsedToken; keysets: readonly KeysetInfo[] }> {
    const attempt = async (refresh: boolean) => {
      const keysets = await this.#o.gateway.keysets(header.mint, refresh);
      const token = parseToken(
        header,
        keysets.map((k) => k.id),
      );
      const known = token.proofs.every((p) =>
        keysets.some((k) => k.id === p.id),
      );
      return { token, keysets, known };
    };

    try {
      const first = await attempt(false);
      if (first.known) return first;
    } catch (err) {
      if (!(err instanceof KeysetUnknownError)) throw err;
    }
    const second = await attempt(true);
    return second;
  }

  async #afterPayment(
    request: AuthRequest,
    route: PricedRoute,
    redemption: Redemption,
    token: ParsedToken,
    presented: Presented,
  ): Promise<Decision> {
    // An owed payment retried with the grant its first answer carried
    // (that answer arrived after all: one kept owed at Envoy's deadline)
    // finds itself applied: the grant is issued again as it is, not
    // bought or lengthened twice.
    const tag = paymentTag(redemption.id);
    const applied = presented.authentic.find(
      (g) => g.paidBy === tag && g.route === route.name,
    );
    if (applied !== undefined) {
      return this.#appliedAlready(request, route, redemption, token, applied);
    }
    const current = this.#sameGrantAgain(redemption, presented, route);
    const now = this.#o.clock.now();
    const charge = route.charge;
    let grant: Grant;
    if (charge.kind === 'rate') {
      const seconds = grantDuration(charge, redemption.amount);
      grant = current
        ? extendGrant(
            current,
            seconds,
            charge.maxSeconds,
            now,
            redemption.amount,
            tag,
          )
        : createGrant({
            payment: redemption.id,
            route: route.name,
            seconds,
            singleUse: false,
            amount: redemption.amount,
            unit: redemption.unit,
            now,
          });
    } else {
      grant = createGrant({
        payment: redemption.id,
        route: route.name,
        seconds: this.#o.requestGrantSeconds,
        singleUse: true,
        amount: redemption.amount,
        unit: redemption.unit,
        now,
      });
    }

    // Only once what the payment buys is ready is the redemption recorded
    // as delivered: a crash before then (a slow pod, say) leaves it owed,
    // and its retry must buy this grant again, not whatever it presents
    // (the pod is made or lengthened already).
    if (this.#o.provisioner !== undefined && redemption.grant !== grant.id) {
      this.#o.store.buying(redemption.id, grant.id);
    }
    let pod: string;
    try {
      pod = await this.#podFor(grant, current === undefined ? 'new' : 'top-up');
    } catch (err) {
      // A new grant's allow sent close to the deadline may have reached
      // its payer: neither its value nor a credit goes back, and its pod
      // stays. The payment stays owed, for a retry once the cluster is
      // back (at worst its request or time twice, never lost).
      if (current === undefined && this.#sentLate.has(redemption.id)) {
        this.#o.store.abandon(redemption.id);
        const refused = deny(provisionError(err), this.#price(route));
        return {
          ...refused,
          message: `${refused.message}; an answer to this payment went out earlier and may have arrived: it stays owed, send the same token again later`,
        };
      }
      // A top-up whose extend went unanswered may have lengthened the pod
      // all the same, and so may an earlier attempt of an owed one: handing
      // the money back would leave that time unpaid for, so the payment
      // stays on the extended grant instead, and the payer's retry with it
      // gets (or finds) the time.
      const extended =
        current !== undefined &&
        (redemption.grant === current.id ||
          (err instanceof ProvisionFailedError && err.mayHaveApplied));
      // Nobody holds a new grant now (its value is back, or on a credit
      // whose pod is made when it is used): a pod the failed create made
      // anyway goes, and is looked for until then (a refund's watch is in
      // the store, for after a restart too). A top-up's pod is the payer's.
      const releaseUntil =
        current === undefined
          ? Math.min(grant.expiresAt, now + RELEASE_WATCH_MS)
          : undefined;
      const refund =
        this.#o.refunds && !extended
          ? this.#refund(
              redemption,
              token,
              route,
              provisionError(err),
              releaseUntil,
            )
          : undefined;
      // A new grant's value, kept, becomes a credit whose time starts
      // when its pod is made; a top-up's stays on the grant it lengthened.
      const kept = current === undefined ? this.#asCredit(grant) : grant;
      const refused = refund ?? this.#credit(request, kept, token, route, err);
      if (refund === undefined) this.#o.store.delivered(redemption.id);
      if (releaseUntil !== undefined) {
        void this.#o.provisioner?.release(grant.id, releaseUntil);
      }
      return this.#appliedTo(
        { ...refused, redemptionId: redemption.id },
        grant,
      );
    }

    return this.#delivering(request, redemption, token, grant, pod);
  }

  /**
   * A request on a single-request grant (a credit): good once, for a
   * request that costs no more than was paid (a trusted price header can
   * price one route differently per request). What it buys starts now:
   * its request's pod lives `requestGrantSeconds`, and on a rate route it
   * becomes a grant of the time its value buys, whose credential the
   * answer carries. Its use is recorded once the pod is there, so a
   * failed retry keeps it, and undone if the answer is lost; a credit
   * used already is refused before its pod is touched, so sending it
   * again neither lengthens nor remakes a pod nobody paid for.
   */
  async #allowOnCredit(
    request: AuthRequest,
    credit: Grant,
    route: PricedRoute,
  ): Promise<Allow> {
    const { charge } = route;
    const price = minimumPayment(charge);
    const unit = unitOf(charge);
    if (credit.unit !== unit || credit.amount < price) {
      throw new InsufficientAmountError(
        `this credit is worth ${credit.amount} ${credit.unit}; this request costs ${price} ${unit}`,
      );
    }
    if (this.#o.store.grantUsed(credit.id)) throw creditUsed();
    const now = this.#o.clock.now();
    const served: Grant =
      charge.kind === 'rate'
        ? {
            ...credit,
            issuedAt: now,
            expiresAt: now + grantDuration(charge, credit.amount) * 1000,
            singleUse: false,
          }
        : { ...credit, expiresAt: now + this.#o.requestGrantSeconds * 1000 };
    // Made now: a pod its failed payment's create made after all was
    // released with the credit, and ensure makes it anew.
    const pod = await this.#podFor(served, 'new');
    if (!this.#o.store.useGrant(credit.id)) throw creditUsed();
    const client = served.singleUse ? {} : this.#grantHeaders(request, served);
    return {
      ...allow(0, credit.unit, client, credit.id, pod),
      creditId: credit.id,
    };
  }

  /**
   * An owed payment whose retry presents the grant its first answer
   * carried: that answer arrived, and the grant holds the payment. It is
   * answered again as a request on that grant, its pod read, not made
   * (a failure leaves the payment owed, never refunded: its time may have
   * been used); once the grant has expired, the payment bought nothing
   * more.
   */
  async #appliedAlready(
    request: AuthRequest,
    route: PricedRoute,
    redemption: Redemption,
    token: ParsedToken,
    grant: Grant,
  ): Promise<Decision> {
    if (this.#o.grants.expired(grant)) {
      this.#o.store.delivered(redemption.id);
      return deny(
        new TokenReplayedError(
          'this token paid for the grant sent with it, which has expired since: pay with a new token',
        ),
        this.#price(route),
      );
    }
    const pod = await this.#podFor(grant, 'use');
    return this.#delivering(request, redemption, token, grant, pod);
  }

  /** The allow a payment gets on `grant`, recorded as delivered. */
  #delivering(
    request: AuthRequest,
    redemption: Redemption,
    token: ParsedToken,
    grant: Grant,
    pod: string,
  ): Allow {
    const paid = this.#allowGrant(
      request,
      grant,
      redemption.amount,
      pod,
      token.fingerprint,
    );
    this.#o.store.delivered(redemption.id);
    return this.#appliedTo({ ...paid, redemptionId: redemption.id }, grant);
  }

  /** Notes which grant a payment's decision gave the payer. */
  #appliedTo<D extends Decision>(decision: D, grant: Grant): D {
    this.#applied.set(decision, grant.id);
    return decision;
  }

  /**
   * The grant a payment tops up: the live one presented; or, for an
   * owed payment (its answer was lost) retried, the one it bought before.
   * A new grant is bought again whatever credential comes with the retry
   * (its pod is there); a top-up needs the credential of the grant it
   * lengthened, which may be lengthened already, or may have expired
   * since: sent with another, it would lengthen that one too.
   */
  #sameGrantAgain(
    redemption: Redemption,
    presented: Presented,
    route: PricedRoute,
  ): Grant | undefined {
    const before = redemption.grant;
    if (before === undefined) return presented.live;
    if (before === grantIdFor(redemption.id)) return undefined;
    const again = presented.authentic.find((grant) => grant.id === before);
    if (again?.route === route.name) return again;
    if (again !== undefined) {
      throw new GrantScopeError(
        `this payment's answer was lost after it lengthened a grant of route ${again.route}: retry it there, with that grant's credential`,
      );
    }
    throw new GrantScopeError(
      "this payment's answer was lost after it lengthened another grant: retry it with that grant's credential",
    );
  }

  /**
   * The pod serving `grant`; empty without provisioning. `new`: a
   * payment's new grant, whose pod is created. `top-up`: its pod's expiry
   * is moved. `use`: a request on the grant alone, whose pod is read at
   * most once a minute. A pod found gone, or stopped by the cluster, is
   * made anew for the time paid; one stopped at its lifetime cap is
   * refused.
   */
  async #podFor(grant: Grant, how: 'new' | 'top-up' | 'use'): Promise<string> {
    const provisioner = this.#o.provisioner;
    if (provisioner === undefined) return '';
    if (how === 'new') {
      const { podName } = await provisioner.ensure(grant.id, grant.expiresAt);
      this.#confirmed.set(grant.id, true);
      return podName;
    }
    // A read, not a create: a create of an existing pod is refused with
    // 403 once the namespace is at its quota, which is no reason to turn
    // away a grant whose pod is there.
    if (how === 'top-up') {
      await provisioner.extend(grant.id, grant.expiresAt);
      this.#confirmed.set(grant.id, true);
    } else if (!this.#confirmed.has(grant.id)) {
      await this.#confirm(provisioner, grant);
    }
    return provisioner.podName(grant.id);
  }

  /**
   * Confirms a grant's pod once for every request that needs it at the
   * same time, and after a failure answers with that failure for a few
   * seconds without asking the API again: payers retrying on a grant must
   * not add to the load of an API server that is already failing.
   */
  #confirm(provisioner: Provisioner, grant: Grant): Promise<void> {
    const failed = this.#unconfirmed.get(grant.id);
    if (failed !== undefined) return Promise.reject(failed);
    let confirming = this.#confirming.get(grant.id);
    if (confirming === undefined) {
      confirming = provisioner
        .extend(grant.id, grant.expiresAt)
        .then(
          () => {
            this.#confirmed.set(grant.id, true);
          },
          (err: unknown) => {
            const failure = toPaygressError(err);
            this.#unconfirmed.set(grant.id, failure);
            throw failure;
          },
        )
        .finally(() => this.#confirming.delete(grant.id));
      this.#confirming.set(grant.id, confirming);
    }
    return confirming;
  }

  /** The grant credential and its cookie, for the client. */
  #grantHeaders(request: AuthRequest, grant: Grant): Record<string, string> {
    const credential = this.#o.grants.issue(grant);
    const seconds = Math.max(
      0,
      Math.ceil((grant.expiresAt - this.#o.clock.now()) / 1000),
    );
    // The cookie is how browsers and Traefik's addAuthCookiesToResponse
    // carry the grant; over https a `__Host-` one, which has to be Secure
    // with Path=/ and no Domain (readGrantCredential).
    const https = request.scheme === 'https';
    const name = grantCookieName(this.#o.grantCookie, https);
    const cookie =
      `${name}=${credential}; Path=/; Max-Age=${seconds}; HttpOnly; SameSite=Lax` +
      (https ? '; Secure' : '');
    return { [GRANT_HEADER]: credential, 'Set-Cookie': cookie };
  }

  #allowGrant(
    request: AuthRequest,
    grant: Grant,
    amount: number,
    pod = '',
    proofsHash?: string,
  ): Allow {
    const client = grant.singleUse ? {} : this.#grantHeaders(request, grant);
    return allow(amount, grant.unit, client, grant.id, pod, proofsHash);
  }

  /** `grant`'s value as a credit: used once, within CREDIT_SECONDS. */
  #asCredit(grant: Grant): Grant {
    const now = this.#o.clock.now();
    return {
      ...grant,
      issuedAt: now,
      expiresAt: now + CREDIT_SECONDS * 1000,
      singleUse: true,
    };
  }

  /**
   * The payment is final, the pod could not be made, and the proofs cannot
   * be handed back (locked to the operator, or already exported): the
   * value stays on a grant the payer retries with, without paying again.
   */
  #credit(
    request: AuthRequest,
    grant: Grant,
    token: ParsedToken,
    route: PricedRoute,
    cause: unknown,
  ): Deny {
    const refused = deny(provisionError(cause), this.#price(route));
    return {
      ...refused,
      message: `${refused.message}; your payment is kept on the grant in X-Paygress-Grant: retry with it`,
      credit: this.#grantHeaders(request, grant)[GRANT_HEADER]!,
      proofsHash: token.fingerprint,
    };
  }

  /**
   * The payment is final but what it buys could not be delivered: hand the
   * value back as a Cashu token, recorded in the store as refunded.
   * Undefined when the proofs already left the wallet: then it is a credit.
   */
  #refund(
    redemption: Pick<Redemption, 'id' | 'mint' | 'unit'>,
    token: ParsedToken,
    route: PricedRoute,
    refusal: PaygressError,
    grantUntil: number | undefined,
  ): Deny | undefined {
    const proofs = this.#o.store.refund(redemption.id, grantUntil);
    if (proofs.length === 0) return undefined;
    // Without the DLEQ proofs: the token goes out twice in headers (X-Cashu
    // and WWW-Authenticate), through proxies' 16 KiB buffers, and they
    // would double it; the payer's wallet checks it by receiving it.
    const refund = encodeToken(redemption.mint, redemption.unit, proofs);
    const refused = deny(refusal, this.#price(route, refusal));
    return {
      ...refused,
      message: `${refused.message}; your payment is returned in X-Cashu`,
      refund,
      proofsHash: token.fingerprint,
    };
  }
}

/** The refusal of a credit whose one use is recorded. */
function creditUsed(): GrantExpiredError {
  return new GrantExpiredError('this grant was for a single request, now used');
}

function provisionError(cause: unknown): ProvisionFailedError {
  return cause instanceof ProvisionFailedError
    ? cause
    : new ProvisionFailedError('the pod could not be provisioned', { cause });
}

// Every allow carries all five upstream headers, empty when they do not
// apply: Caddy 2.6 forwards a literal placeholder for a missing one.
function allow(
  amount: number,
  unit: string,
  clientHeaders: Record<string, string>,
  userId = '',
  pod = '',
  proofsHash?: string,
): Allow {
  return {
    kind: 'allow',
    amount,
    unit,
    upstreamHeaders: {
      'X-Payment-Verified': amount > 0 || userId !== '' ? 'true' : 'false',
      'X-Payment-Amount': String(amount),
      'X-Payment-Unit': unit,
      'X-User-ID': userId,
      'X-Provisioned-Pod': pod,
    },
    clientHeaders,
    ...(proofsHash ? { proofsHash } : {}),
  };
}

function deny(
  err: Pick<PaygressError, 'code' | 'fault' | 'message' | 'cause'>,
  price: Price | undefined,
): Deny {
  if (err.fault === 'ours') {
    return {
      kind: 'deny',
      reason: err.code,
      message: PRIVATE_FAULTS[err.code] ?? err.message,
      fault: err.fault,
      detail: describeFault(err),
      ...(err.code === 'PAYGRESS_INTERNAL' && { stack: rootStack(err) }),
    };
  }
  return {
    kind: 'deny',
    reason: err.code,
    message: err.message,
    fault: err.fault,
    ...(price ? { price, paymentRequest: paymentRequestFor(price) } : {}),
  };
}

/**
 * What the client is told of faults whose details describe the operator's
 * own systems (the cluster's address and service account, the store's
 * files); the details go to the log. Faults of the mint keep their
 * message: the mint is the client's as much as ours.
 */
const PRIVATE_FAULTS: Partial<Record<ReasonCode, string>> = {
  PAYGRESS_PROVISION_FAILED:
    'the pod this payment buys could not be started; the operator has the details',
  PAYGRESS_STORE_FAILED:
    'the payment could not be recorded; the operator has the details',
  PAYGRESS_INTERNAL:
    'internal error while deciding the request; the operator has the details',
};

/**
 * The stack of the deepest error among `err`'s causes, clipped at a line
 * or word break: a value the message quotes is kept whole or not at all,
 * so redacting it later leaves no fragment.
 */
function rootStack(err: { stack?: string; cause?: unknown }): string {
  let root = err;
  for (let depth = 0; root.cause instanceof Error && depth < 5; depth++) {
    root = root.cause;
  }
  const stack = root.stack ?? '';
  if (stack.length <= MAX_STACK) return stack;
  const cut = stack.slice(0, MAX_STACK);
  const line = cut.lastIndexOf('\n');
  return line > 0
    ? cut.slice(0, line)
    : cut.slice(0, Math.max(0, cut.search(/\s\S*$/)));
}

/** Longest stack a decision keeps, in characters. */
const MAX_STACK = 4096;

/** The message of a fault of ours and of each cause under it. */
function describeFault(err: { message: string; cause?: unknown }): string {
  const parts = [err.message];
  let cause = err.cause;
  for (let depth = 0; cause !== undefined && depth < 5; depth++) {
    if (cause instanceof Error) {
      parts.push(cause.message);
      cause = cause.cause;
    } else {
      parts.push(String(cause));
      cause = undefined;
    }
  }
  return parts.join(': caused by: ');
}

/**
 * The least amount whose split into the fewest proofs (one per bit, as
 * mints sign powers of two) is still worth `price` after NUT-02 input
 * fees of `ppk` per proof: ceil(proofs × ppk / 1000).
 */
export function withInputFees(price: number, ppk: number): number {
  if (ppk <= 0) return price;
  const fee = (amount: number) => Math.ceil((bitCount(amount) * ppk) / 1000);
  // A few steps up find the least such amount for any fee a mint really
  // charges; past them, the bound that holds for any amount of up to 53
  // bits, so an absurd fee cannot stall a refusal.
  for (let amount = price, step = 0; step < 4096; amount++, step++) {
    if (amount - fee(amount) >= price) return amount;
  }
  return price + Math.ceil((53 * ppk) / 1000);
}

function bitCount(n: number): number {
  let bits = 0;
  for (let rest = n; rest > 0; rest = Math.floor(rest / 2)) bits += rest % 2;
  return bits;
}

/**
 * What a rate route sells, for its refusal: a payer cannot otherwise
 * tell that a grant's time stops at `maxSeconds`, and that value paid
 * beyond it buys nothing.
 */
function rateTerms(charge: Charge): string {
  if (charge.kind !== 'rate') return '';
  const { amount, unit, perSeconds, maxSeconds } = charge;
  const most = Math.ceil((maxSeconds * amount) / perSeconds);
  return ` (${amount} ${unit} buys ${perSeconds} s; a grant holds at most ${maxSeconds} s, which ${most} ${unit} buys: more buys no more time)`;
}

function unitOf(charge: Charge): string {
  return charge.kind === 'free' ? '' : charge.unit;
}

function insufficient(price: number, unit: string, net: number) {
  return new InsufficientAmountError(
    `token is worth ${net} ${unit} after mint fees; this request costs ${price} ${unit}`,
  );
}

/** NUT-02: ceil(sum of input_fee_ppk over the inputs / 1000). */
function fees(
  token: ParsedToken,
  keysets: readonly KeysetInfo[],
  unit: string,
): number {
  let ppk = 0;
  for (const proof of token.proofs) {
    const keyset = keysets.find((k) => k.id === proof.id);
    if (keyset === undefined || keyset.unit !== unit) {
      throw new KeysetUnknownError(
        `proof keyset ${proof.id.slice(0, 16)} is not a ${unit} keyset of this mint`,
      );
    }
    ppk += keyset.inputFeePpk;
  }
  return Math.ceil(ppk / 1000);
}
