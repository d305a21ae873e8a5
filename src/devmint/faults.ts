/**
 * Faults the dev mint can be told to inject, per route, so that Paygress's
 * handling of a slow, hung, failing or lying mint can be tested.
 */

/** Routes of the mint API, as counted and as faults address them. */
export type MintRoute =
  | 'swap'
  | 'checkstate'
  | 'restore'
  | 'keys'
  | 'keysets'
  | 'info'
  | 'mint-quote'
  | 'mint';

/** A route, or `'*'` for every route without a fault of its own. */
export type FaultRoute = MintRoute | '*';

/** A fault to inject. */
export type Fault =
  /** Answer after `ms` milliseconds (for swap: with the inputs PENDING). */
  | { kind: 'delay'; ms: number }
  /**
   * The request waits `ms` before the mint looks at it (queued behind
   * others): unlike `delay`, a swap's inputs stay UNSPENT meanwhile.
   */
  | { kind: 'queue'; ms: number }
  /** Never answer until the fault is cleared or the mint stops. */
  | { kind: 'hang' }
  /** Answer with this HTTP status and a JSON error body. */
  | { kind: 'status'; status: number }
  /**
   * Refuse without handling the request, as a mint refuses (HTTP 400 with
   * a NUT error code and its detail).
   */
  | { kind: 'refuse'; code: number; detail: string }
  /** Answer 200 with a body that is not JSON. */
  | { kind: 'garbage' }
  /** Handle the request, then destroy the socket without answering. */
  | { kind: 'swap-then-drop' }
  /**
   * Handle the request, then answer with every blind signature altered as
   * a lying or broken mint would: `dleq` changes each DLEQ proof's `s`,
   * `C_` puts another valid point in place of each signature, and
   * `C_ without dleq` does that and leaves the DLEQ proofs out.
   */
  | { kind: 'forge'; part: ForgedPart };

/** What a `forge` fault alters in each blind signature. */
export type ForgedPart = 'dleq' | 'C_' | 'C_ without dleq';

/** The faults in force, with a way to wait until one is lifted. */
export class FaultBoard {
  readonly #faults = new Map<FaultRoute, Fault>();
  #waiters = new Set<() => void>();

  /** Sets or (with `undefined`) clears the fault of `route`. */
  set(route: FaultRoute, fault: Fault | undefined): void {
    if (fault === undefined) this.#faults.delete(route);
    else this.#faults.set(route, fault);

    const waiters = this.#waiters;
    this.#waiters = new Set();
    for (const wake of waiters) wake();
  }

  /** The fault for `route`: its own, else the `'*'` one. */
  for(route: MintRoute): Fault | undefined {
    return this.#faults.get(route) ?? this.#faults.get('*');
  }

  /**
   * Resolves once `route` no longer has a hang fault; rejects when `signal`
   * aborts (the mint stopped), so the request gives up its reservations.
   */
  async untilUnhung(route: MintRoute, signal: AbortSignal): Promise<void> {
    while (this.for(route)?.kind === 'hang') {
      signal.throwIfAborted();
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => reject(signal.reason);
        this.#waiters.add(() => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        });
        signal.addEventListener('abort', onAbort, { once: true });
      });
    }
  }
}

/** Sleeps `ms`, rejecting early when `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    signal.throwIfAborted();
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
