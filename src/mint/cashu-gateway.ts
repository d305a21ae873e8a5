/**
 * The mint gateway: the only code that speaks to a mint. It uses the
 * cashu-ts wallet for the protocol and undici for transport, so every call
 * has a deadline, a bounded connection pool, and a capped answer size, and
 * every failure arrives as a Paygress error whose code says what happened.
 */
import { Agent, request } from 'undici';
import {
  Amount,
  JSONInt,
  Mint,
  MintOperationError,
  Wallet,
  serializeSwapPreview,
  type Proof,
  type RequestFn,
  type SerializedSwapPreview,
} from '@cashu/cashu-ts';
import {
  DleqInvalidError,
  DleqRequiredError,
  KeysetUnknownError,
  MintError,
  MintNotAllowedError,
  MintUnavailableError,
  PaygressError,
  TokenMalformedError,
  TokenPendingError,
  TokenRejectedError,
  TokenReplayedError,
} from '../core/errors.ts';
import type {
  KeysetInfo,
  MintGateway,
  PreparedSwap,
  ProofState,
  WireProof,
} from '../core/ports.ts';
import { normalizeMintUrl } from '../core/mint-url.ts';
import { redactSecrets, withoutValues } from '../core/redact.ts';
import { NOT_SENT } from '../not-sent.ts';
import {
  MintBreaker,
  type CircuitState,
  type MintBreakerOptions,
} from './breaker.ts';
import { verifyProofDleq } from './dleq.ts';
import { fastOutputs, readSwapPreview } from './outputs.ts';

/** Options of {@link CashuMintGateway}. */
export interface CashuMintGatewayOptions {
  /** Normalised URLs of the mints Paygress may contact; no other, ever. */
  readonly mints: readonly string[];
  /** Deadline of one mint request, in ms. Default 5000. */
  readonly timeoutMs?: number;
  /** Connections kept open to each mint, at most. Default 16. */
  readonly connectionsPerMint?: number;
  /** How long a keyset list is trusted before it is fetched again, in ms. Default 60000. */
  readonly keysetTtlMs?: number;
  /** Largest mint answer read, in bytes. Default 4 MiB. */
  readonly maxResponseBytes?: number;
  /** Called after every mint request, for metrics. */
  readonly onRequest?: (event: MintRequestEvent) => void;
  /** Circuit breaker and concurrency bound per mint and operation. */
  readonly breaker?: MintBreakerOptions;
  /**
   * Public key (compressed hex) every new proof is P2PK-locked to (NUT-11),
   * so the proofs Paygress stores are spendable only by the operator.
   * Default none: proofs are plain bearer proofs.
   */
  readonly lockTo?: string;
}

/** One finished mint request, as reported to `onRequest`. */
export interface MintRequestEvent {
  readonly mint: string;
  /**
   * The mint API operation: the path segment after `/v1/` (`swap`,
   * `keysets`, `keys`, `checkstate`, `restore`, `info`), read after the
   * mint URL's own path, which a mint served under a path has.
   */
  readonly operation: string;
  /** `ok`, or the Paygress reason code the request failed with. */
  readonly outcome: string;
  readonly durationMs: number;
}

/** The state of one mint operation's circuit breaker. */
export interface MintCircuit {
  readonly mint: string;
  readonly operation: string;
  readonly state: CircuitState;
}

// NUT error codes (NUT-00 error table). Some mints number these differently,
// so the detail text is matched on meaning as a second opinion.
const SPENT = 11001;
const REFRESH_FLOOR_MS = 1000;
const PENDING = 11002;
// Refusals of what Paygress itself sends in a swap (NUT error codes as
// cashubtc/nuts error_codes.md numbers them now): a swap out of balance
// (11005), outputs given twice (11008). Mints of the earlier numbering
// sent 11002 (now pending) for the first, so its words count too.
const OURS = new Set([11005, 11008]);
const OUR_MAKING = /not balanced|unbalanced/i;
// Our outputs already signed (11003; 10002 before) or pending (11004):
// they are fresh, so only this very swap, delivered twice (a proxy in
// front of the mint retrying it), can have made them so. It may have run.
const RAN = new Set([11003, 11004]);
const RAN_WORDS = /already (been )?signed/i;

export class CashuMintGateway implements MintGateway {
  readonly #allowed: ReadonlySet<string>;
  readonly #timeoutMs: number;
  readonly #keysetTtlMs: number;
  readonly #maxResponseBytes: number;
  readonly #dispatcher: Agent;
  readonly #onRequest: ((event: MintRequestEvent) => void) | undefined;
  readonly #wallets = new Map<string, Promise<Wallet>>();
  readonly #breakers = new Map<
    string,
    { mint: string; operation: string; breaker: MintBreaker }
  >();
  readonly #breakerOptions: MintBreakerOptions;
  readonly #lockTo: string | undefined;
  readonly #keysets = new Map<
    string,
    {
      at: number;
      value: Promise<KeysetInfo[]>;
      next?: Promise<KeysetInfo[]>;
      /** The fetch failed: kept only for REFRESH_FLOOR_MS. */
      failed?: true;
    }
  >();
  /** The last keysets each mint answered with, for `knownKeysets`. */
  readonly #known = new Map<string, KeysetInfo[]>();

  constructor(options: CashuMintGatewayOptions) {
    this.#allowed = new Set(options.mints.map(normalizeMintUrl));
    this.#timeoutMs = options.timeoutMs ?? 5000;
    this.#keysetTtlMs = options.keysetTtlMs ?? 60_000;
    this.#maxResponseBytes = options.maxResponseBytes ?? 4 * 1024 * 1024;
    this.#onRequest = options.onRequest;
    this.#breakerOptions = options.breaker ?? {};
    this.#lockTo = options.lockTo;
    this.#dispatcher = new Agent({
      connections: options.connectionsPerMint ?? 16,
      connectTimeout: this.#timeoutMs,
      headersTimeout: this.#timeoutMs,
      bodyTimeout: this.#timeoutMs,
    });
  }

  async keysets(mintUrl: string, refresh = false): Promise<KeysetInfo[]> {
    const mint = this.#allow(mintUrl);
    const cached = this.#keysets.get(mint);
    // A monotonic clock: a wall clock stepped back would keep an entry
    // young, or make one look fresh for ever.
    const age = cached ? performance.now() - cached.at : Infinity;
    // A failed fetch is kept for the refresh floor too: a mint answering
    // with a list that cannot be used (quickly, with HTTP 200, so its
    // breaker stays closed) must not be asked again for every token.
    const fresh = cached?.failed ? REFRESH_FLOOR_MS : this.#keysetTtlMs;
    if (cached && !refresh && age < fresh) return cached.value;

    // A forced refresh happens at most once per REFRESH_FLOOR_MS, and every
    // caller in that window shares it: tokens naming made-up keysets cannot
    // turn into a flood of mint requests, and a real rotation is seen
    // within a second. After the wait it runs whatever the clock says: a
    // timer may wake a little early, and asking again would find this
    // entry still young and wait on its own answer.
    if (cached && refresh && age < REFRESH_FLOOR_MS) {
      cached.next ??= sleep(REFRESH_FLOOR_MS - age).then(() =>
        this.#refreshKeysets(mint),
      );
      return cached.next;
    }
    return this.#refreshKeysets(mint, !refresh);
  }

  knownKeysets(mintUrl: string): readonly KeysetInfo[] | undefined {
    // The core passes normalised URLs, each on the allow-list: parsing one
    // again would be a cost on every refusal, known keysets or not.
    const known = this.#known.get(mintUrl);
    if (known !== undefined || this.#allowed.has(mintUrl)) return known;
    return this.#known.get(normalizeMintUrl(mintUrl));
  }

  /**
   * Fetches the mint's keysets. A periodic refresh (`staleOnError`) that
   * fails answers with the list the mint last gave: a failing
   * `/v1/keysets` alone must not refuse tokens whose keysets are known,
   * whose swap the mint decides; the next look, after the refresh floor,
   * asks again. A forced one (a token names a keyset not in the list)
   * fails as it failed.
   */
  #refreshKeysets(mint: string, staleOnError = false): Promise<KeysetInfo[]> {
    const fetched = this.#fetchKeysets(mint, this.#keysets.get(mint)?.value);
    const known = staleOnError ? this.#known.get(mint) : undefined;
    const value = known === undefined ? fetched : fetched.catch(() => known);
    this.#keysets.set(mint, { at: performance.now(), value });
    fetched.then(
      (keysets) => {
        if (this.#keysets.get(mint)?.value === value) {
          this.#known.set(mint, keysets);
        }
      },
      () => {
        if (this.#keysets.get(mint)?.value === value) {
          this.#keysets.set(mint, {
            at: performance.now(),
            value,
            failed: true,
          });
        }
      },
    );
    return value;
  }

  async prepareSwap(
    mintUrl: string,
    unit: string,
    proofs: readonly WireProof[],
    options: { requireDleq?: boolean } = {},
  ): Promise<PreparedSwap> {
    const wallet = await this.#wallet(mintUrl, unit);
    const inputs = proofs.map(toCashuProof);

    await guard(() => wallet.ensureOperableKeysets(inputs.map((p) => p.id)));
    for (const proof of inputs) {
      checkAmount(wallet, proof);
      checkDleq(wallet, proof, options.requireDleq);
    }

    const outputs = this.#lockTo
      ? { type: 'p2pk' as const, options: { pubkey: this.#lockTo } }
      : undefined;
    // Checked above, with our own error; the wallet would verify each DLEQ
    // proof again, a quarter of the work of a redemption, and the mint
    // needs none of them.
    const checked = inputs.map(({ dleq: _checked, ...proof }) => proof);
    const preview = await guard(() =>
      wallet.prepareSwapToReceive(checked, undefined, outputs),
    );
    return {
      serialized: JSON.stringify(serializeSwapPreview(preview)),
      outputAmount: preview.amount.toNumber(),
    };
  }

  async completeSwap(
    mintUrl: string,
    unit: string,
    swap: PreparedSwap,
  ): Promise<WireProof[]> {
    const wallet = await this.#wallet(mintUrl, unit);
    const preview = previewOf(swap);

    try {
      const { keep, send } = await guard(() => wallet.completeSwap(preview));
      return provenProofs(wallet, [...keep, ...send]);
    } catch (err) {
      if (!isStaleKeyset(err)) throw err;
      // The mint refused our outputs' keyset (NUT-02 rotation): forget what
      // we knew of its keys so the next attempt prepares against fresh ones.
      this.#forget(this.#allow(mintUrl));
      throw new MintUnavailableError(
        'the mint rotated its keysets; preparing the redemption again',
        { notSent: true, retry: true, cause: err },
      );
    }
  }

  async restoreSwap(
    mintUrl: string,
    unit: string,
    swap: PreparedSwap,
  ): Promise<WireProof[]> {
    const wallet = await this.#wallet(mintUrl, unit);
    const preview = previewOf(swap);
    const outputs = [
      ...(preview.keepOutputs ?? []),
      ...(preview.sendOutputs ?? []),
    ];

    const mint = this.#mintClient(this.#allow(mintUrl));
    const answer = await guard(() =>
      mint.restore({ outputs: outputs.map((o) => o.blindedMessage) }),
    );
    // Signed by the keyset active when the swap was made, which may have
    // been rotated out since: its keys are loaded on demand.
    await guard(() =>
      wallet.ensureOperableKeysets(answer.signatures.map((s) => s.id)),
    );
    const byB = new Map(answer.outputs.map((o, i) => [o.B_, i]));
    const proofs = outputs.flatMap((output) => {
      const index = byB.get(output.blindedMessage.B_);
      const signature =
        index === undefined ? undefined : answer.signatures[index];
      if (signature === undefined) return [];
      return [output.toProof(signature, wallet.getKeyset(signature.id))];
    });
    return provenProofs(wallet, proofs);
  }

  async checkState(
    mintUrl: string,
    ys: readonly string[],
  ): Promise<ProofState[]> {
    const mint = this.#mintClient(this.#allow(mintUrl));
    // An error answer here is about the question, not about a payer's
    // token: it must not read as the token being refused.
    const answer = await guard(() =>
      mint.check({ Ys: [...ys] }).catch((err: unknown) => {
        if (!(err instanceof MintOperationError)) throw err;
        throw new MintError(
          `the mint answered checkstate with an error (code ${err.code}: ${String(err.message).slice(0, 120)})`,
        );
      }),
    );

    const byY = new Map(answer.states.map((s) => [s.Y, s.state]));
    return ys.map((y) => {
      const state = byY.get(y);
      if (state !== 'UNSPENT' && state !== 'PENDING' && state !== 'SPENT') {
        throw new MintError('mint answered checkstate without every Y');
      }
      return state;
    });
  }

  /** The circuit of each mint and operation called so far, for metrics. */
  circuits(): MintCircuit[] {
    return [...this.#breakers.values()].map(({ mint, operation, breaker }) => ({
      mint,
      operation,
      state: breaker.state,
    }));
  }

  /** Drops cached keysets and wallets of a mint. */
  #forget(mint: string): void {
    this.#keysets.delete(mint);
    this.#dropWallets(mint);
  }

  /** Drops the cached wallets of a mint, loaded against old keysets. */
  #dropWallets(mint: string): void {
    for (const key of this.#wallets.keys()) {
      if (key.startsWith(`${mint} `)) this.#wallets.delete(key);
    }
  }

  /** Closes the connection pool. */
  async close(): Promise<void> {
    await this.#dispatcher.close();
  }

  #allow(mintUrl: string): string {
    const mint = normalizeMintUrl(mintUrl);
    if (!this.#allowed.has(mint)) {
      // Defence in depth: the core checks first, but a URL that reached
      // here unchecked must still never be contacted.
      throw new MintNotAllowedError(`mint ${mint} is not on the allow-list`);
    }
    return mint;
  }

  async #fetchKeysets(
    mint: string,
    previous: Promise<KeysetInfo[]> | undefined,
  ): Promise<KeysetInfo[]> {
    const answer = await guard(() => this.#mintClient(mint).getKeySets());
    if (!Array.isArray(answer?.keysets)) {
      throw new MintError('mint answered /v1/keysets without keysets');
    }
    const keysets = answer.keysets.map((k) => ({
      id: String(k.id),
      unit: String(k.unit),
      active: k.active !== false,
      inputFeePpk: Number(k.input_fee_ppk ?? 0),
    }));

    // A rotation makes cached wallets sign outputs on a retired keyset.
    const before = await previous?.catch(() => undefined);
    if (before && fingerprintOf(before) !== fingerprintOf(keysets)) {
      this.#dropWallets(mint);
    }
    return keysets;
  }

  #wallet(mintUrl: string, unit: string): Promise<Wallet> {
    const mint = this.#allow(mintUrl);
    const key = `${mint} ${unit}`;
    let wallet = this.#wallets.get(key);
    if (wallet === undefined) {
      wallet = this.#loadWallet(mint, unit);
      this.#wallets.set(key, wallet);
      wallet.catch(() => this.#wallets.delete(key));
    }
    return wallet;
  }

  async #loadWallet(mint: string, unit: string): Promise<Wallet> {
    // Outputs made, and turned into proofs, on libsecp256k1 (outputs.ts).
    const wallet = new Wallet(this.#mintClient(mint), {
      unit,
      outputDataCreator: fastOutputs,
    });
    await guard(() => wallet.loadMint());
    return wallet;
  }

  #mintClient(mint: string): Mint {
    return new Mint(mint, { customRequest: this.#requestFn(mint) });
  }

  #requestFn(mint: string): RequestFn {
    return (async (args) => {
      const url = new URL(args.endpoint);
      const operation = mintOperation(mint, url);
      const started = performance.now();
      let sent = false;
      try {
        if (operation === undefined) {
          throw new MintNotAllowedError(
            'refusing a request outside the mint URL',
          );
        }
        const result = await this.#breaker(mint, operation).run(() => {
          sent = true;
          return this.#send(url, args);
        }, isMintFault);
        this.#report(mint, operation, 'ok', started);
        return result;
      } catch (err) {
        const mapped = classify(err);
        // One the breaker refused (its circuit open, its queue full) never
        // went out: no request to count, nor its time.
        if (sent || operation === undefined) {
          this.#report(mint, operation ?? 'other', mapped.code, started);
        }
        throw mapped instanceof MintError ||
          mapped instanceof MintUnavailableError
          ? mapped
          : err;
      }
    }) as RequestFn;
  }

  /**
   * One breaker per mint and operation: a mint whose swaps hang while its
   * keysets and checkstate still answer must still trip on swaps.
   */
  #breaker(mint: string, operation: string): MintBreaker {
    const key = `${mint} ${operation}`;
    let circuit = this.#breakers.get(key);
    if (circuit === undefined) {
      circuit = {
        mint,
        operation,
        breaker: new MintBreaker(this.#breakerOptions),
      };
      this.#breakers.set(key, circuit);
    }
    return circuit.breaker;
  }

  async #send(
    url: URL,
    args: {
      requestBody?: unknown;
      headers?: Record<string, string>;
      method?: string;
    },
  ): Promise<unknown> {
    const body =
      args.requestBody === undefined
        ? undefined
        : JSONInt.stringify(args.requestBody);
    const response = await request(url, {
      method: (args.method ?? (body ? 'POST' : 'GET')) as 'GET' | 'POST',
      body,
      headers: {
        ...args.headers,
        accept: 'application/json',
        ...(body ? { 'content-type': 'application/json' } : {}),
      },
      dispatcher: this.#dispatcher,
      signal: AbortSignal.timeout(this.#timeoutMs),
    });

    const text = await readCapped(response.body, this.#maxResponseBytes);
    const json = parseJson(text);
    if (response.statusCode === 400 && isNutError(json)) {
      const detail = typeof json.detail === 'string' ? json.detail : '';
      const err = new MintOperationError(
        json.code,
        mintDetail(detail, args.requestBody),
      );
      // Read for its words as the mint wrote them: taking a payer's
      // secret out could change them ("signed" without an "e").
      RAW_DETAILS.set(err, detail.slice(0, MAX_DETAIL));
      throw err;
    }
    if (response.statusCode < 200 || response.statusCode > 299) {
      throw new MintError(`mint answered HTTP ${response.statusCode}`);
    }
    if (json === undefined) throw new MintError('mint answered invalid JSON');
    return json;
  }

  #report(mint: string, operation: string, outcome: string, started: number) {
    this.#onRequest?.({
      mint,
      operation,
      outcome,
      durationMs: performance.now() - started,
    });
  }
}

async function readCapped(
  body: AsyncIterable<Buffer> & { destroy(): void },
  limit: number,
): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > limit) {
      body.destroy();
      throw new MintError(`mint answer exceeds ${limit} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function parseJson(text: string): unknown {
  try {
    return JSONInt.parse(text);
  } catch {
    return undefined;
  }
}

/** Longest mint error detail kept, in characters. */
const MAX_DETAIL = 1024;

/**
 * The details of mint error answers as the mint wrote them, for
 * {@link classify} alone: never logged, never sent.
 */
const RAW_DETAILS = new WeakMap<object, string>();

/**
 * A mint's error detail as Paygress keeps it (it is logged, and its start
 * sent to the client): at most {@link MAX_DETAIL} characters with what
 * could be money taken out. A mint may quote the request it refused, and a
 * refused swap's inputs are still the payer's money: their secrets are
 * taken out by value, whatever their form, before anything token-shaped.
 * Only a window the clip keeps is searched, wide enough that a secret
 * starting inside it is taken out whole.
 */
function mintDetail(detail: string, sent: unknown): string {
  const inputs = (sent as { inputs?: unknown } | undefined)?.inputs;
  const secrets = Array.isArray(inputs)
    ? inputs
        .map((input) => (input as { secret?: unknown } | null)?.secret)
        .filter((secret): secret is string => typeof secret === 'string')
    : [];
  // A secret's longest form (JSON in JSON) is under 8 times its length.
  const longest = Math.max(0, ...secrets.map((secret) => secret.length));
  const window = detail.slice(0, MAX_DETAIL + 8 * longest);
  const text = redactSecrets(withoutValues(window, secrets));
  return text.length > MAX_DETAIL || window.length < detail.length
    ? `${text.slice(0, MAX_DETAIL)}…`
    : text;
}

function isNutError(json: unknown): json is { code: number; detail: unknown } {
  return (
    typeof json === 'object' &&
    json !== null &&
    typeof (json as { code?: unknown }).code === 'number'
  );
}

function fingerprintOf(keysets: readonly KeysetInfo[]): string {
  return keysets
    .map((k) => `${k.id}:${k.active}:${k.inputFeePpk}`)
    .sort()
    .join(',');
}

/** cashu-ts's error for a mint refusing a keyset (NUT-02 12xxx codes). */
function isStaleKeyset(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 5; depth++) {
    if ((e as { name?: unknown }).name === 'StaleKeysetError') return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** Whether an error says the mint is unwell (not that it refused us). */
function isMintFault(err: unknown): boolean {
  const mapped = classify(err);
  // A mint that answered refusing what we built is up, whoever's fault.
  if (mapped.refusedByMint) return false;
  return mapped instanceof MintUnavailableError || mapped instanceof MintError;
}

/** Runs a wallet call, turning whatever it throws into a Paygress error. */
async function guard<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw classify(err);
  }
}

/** Maps any failure of a mint call to the Paygress error it means. */
function classify(err: unknown): PaygressError {
  if (err instanceof PaygressError) return err;

  if (err instanceof MintOperationError) {
    // The mint's own words decide; what is shown has secrets taken out.
    const detail = RAW_DETAILS.get(err) ?? String(err.message);
    const shown = String(err.message);
    // An error answer about what the request says (the same for every
    // delivery of it): nothing it asked for happened. Not so when the
    // inputs are spent or pending, nor our outputs signed: an earlier
    // delivery of the same request may have done that.
    const refused = { refusedByMint: true };
    if (err.code === SPENT || /already spent/i.test(detail)) {
      return new TokenReplayedError('the mint says the token is already spent');
    }
    if (RAN.has(err.code) || RAN_WORDS.test(detail)) {
      // The whole detail (secrets taken out) goes to the log as the cause.
      return new MintError(
        `the mint says this swap's outputs are signed or pending already; settling it (code ${err.code}: ${shown.slice(0, 120)})`,
        { cause: err },
      );
    }
    // A refusal of what Paygress built (its outputs, the swap's balance):
    // the payer's token may be good, and must not be called unspendable.
    if (OURS.has(err.code) || OUR_MAKING.test(detail)) {
      return new MintError(
        `the mint refused the swap Paygress built (code ${err.code}: ${shown.slice(0, 120)})`,
        { ...refused, cause: err },
      );
    }
    // A word of its own: "spending conditions not met" (NUT-10) is a
    // refusal, and retrying it as pending would never succeed.
    if (err.code === PENDING || /\bpending\b/i.test(detail)) {
      return new TokenPendingError('the mint says the token is pending');
    }
    if (err.code === 12001) {
      return new KeysetUnknownError(
        'the mint does not know the keyset',
        refused,
      );
    }
    return new TokenRejectedError(
      `the mint refused the token (code ${err.code}: ${shown.slice(0, 120)})`,
      refused,
    );
  }

  const code = errorCode(err);
  if (code !== undefined && NOT_SENT.has(code)) {
    return new MintUnavailableError(`mint unreachable (${code})`, {
      cause: err,
      notSent: true,
    });
  }
  if (code !== undefined || isAbort(err)) {
    return new MintUnavailableError(
      `mint did not answer in time or dropped the connection (${code ?? 'timeout'})`,
      { cause: err },
    );
  }

  const message = err instanceof Error ? err.message : String(err);
  if (
    /keyset/i.test(message) &&
    /(unknown|not found|no keyset)/i.test(message)
  ) {
    return new KeysetUnknownError(
      'a proof names a keyset the mint does not have',
    );
  }
  return new MintError(
    `unexpected answer from the mint: ${message.slice(0, 160)}`,
    {
      cause: err,
    },
  );
}

function errorCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

function isAbort(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 5; depth++) {
    const name = (e as { name?: unknown }).name;
    if (name === 'AbortError' || name === 'TimeoutError') return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/**
 * A proof can only be worth an amount its keyset has a key for. cashu-ts
 * fails on any other while preparing the swap, which would read as a
 * fault of the mint's (a 5xx any client could cause) though nothing was
 * sent to it.
 */
function checkAmount(wallet: Wallet, proof: Proof): void {
  const amount = proof.amount.toNumber();
  if (wallet.getKeyset(proof.id).keys[amount] === undefined) {
    throw new TokenMalformedError(
      `a proof claims ${amount}, not an amount keyset ${proof.id.slice(0, 16)} signs`,
    );
  }
}

function checkDleq(wallet: Wallet, proof: Proof, require = false): void {
  if (!proof.dleq) {
    if (require) {
      throw new DleqRequiredError(
        'every proof must carry a DLEQ proof (NUT-12)',
      );
    }
    return;
  }
  const key = wallet.getKeyset(proof.id).keys[proof.amount.toNumber()];
  if (key === undefined || !verifyProofDleq(proof, key)) {
    throw new DleqInvalidError(
      'a proof carries a DLEQ proof that does not verify',
    );
  }
}

/**
 * The proofs made of a mint's blind signatures, as stored. Each DLEQ proof
 * the mint sent was verified as the proof was made (outputs.ts); a mint
 * that advertises NUT-12 must send one with every signature, since
 * without it a wrong `C_` would be stored as money and nothing would show
 * it until the proof was spent.
 */
function provenProofs(wallet: Wallet, proofs: readonly Proof[]): WireProof[] {
  if (
    wallet.getMintInfo().isSupported(12).supported &&
    proofs.some((proof) => !proof.dleq)
  ) {
    throw new MintError(
      'the mint advertises NUT-12 but sent a blind signature without its DLEQ proof',
    );
  }
  return proofs.map(toWireProof);
}

/** The wallet's swap preview back from its write-ahead record. */
function previewOf(swap: PreparedSwap) {
  return readSwapPreview(JSON.parse(swap.serialized) as SerializedSwapPreview);
}

function toCashuProof(proof: WireProof): Proof {
  return { ...proof, amount: Amount.from(proof.amount) } as Proof;
}

function toWireProof(proof: Proof): WireProof {
  return {
    id: proof.id,
    amount: proof.amount.toNumber(),
    secret: proof.secret,
    C: proof.C,
    ...(proof.dleq ? { dleq: proof.dleq } : {}),
  };
}

/**
 * The operation a mint API URL calls, read after the mint URL's own path
 * (`https://host/cashu` calls `https://host/cashu/v1/swap`); `other` for a
 * path not under `/v1/`, undefined for a URL outside the mint.
 */
function mintOperation(mint: string, url: URL): string | undefined {
  const base = new URL(mint);
  const prefix = base.pathname.replace(/\/+$/, '');
  if (url.origin !== base.origin || !url.pathname.startsWith(`${prefix}/`)) {
    return undefined;
  }
  return (
    /^\/v1\/([^/]+)/.exec(url.pathname.slice(prefix.length))?.[1] ?? 'other'
  );
}
