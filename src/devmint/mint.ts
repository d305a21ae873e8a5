/**
 * The dev mint's operations, apart from HTTP: keys (NUT-01/02), swap
 * (NUT-03), bolt11 mint quotes and minting (NUT-04/23), checkstate (NUT-07)
 * and restore (NUT-09). State lives in memory.
 */
import { randomUUID } from 'node:crypto';
import { checkInputs, checkOutputs } from './checks.ts';
import type { CheckedOutputs } from './checks.ts';
import { signBlindedMessage } from './crypto.ts';
import type { WireBlindSignature } from './crypto.ts';
import { ERROR_CODES, MintFailure } from './errors.ts';
import { KeysetRegistry } from './keysets.ts';
import type { KeysetRegistryOptions, MintKeyset } from './keysets.ts';
import { Ledger } from './ledger.ts';
import type { IssuedSignature, ProofState } from './ledger.ts';
import { createFakeInvoice } from './lightning.ts';
import {
  parseMint,
  parseOutputs,
  parseQuoteRequest,
  parseSwap,
  parseYs,
} from './wire.ts';

/** A bolt11 mint quote in its wire form (NUT-04, NUT-23). */
export interface WireMintQuote {
  quote: string;
  request: string;
  amount: number;
  unit: string;
  state: 'UNPAID' | 'PAID' | 'ISSUED';
  /** Unix time in seconds. */
  expiry: number;
}

/** Hooks that let a caller act while a swap holds its inputs PENDING. */
export interface SwapHooks {
  /** Runs after inputs are reserved, before the swap commits; may reject. */
  whilePending?: () => Promise<void>;
}

/** Quote lifetime, seconds. */
const QUOTE_TTL_S = 3600;

/** Largest amount one mint quote may ask for, in the quote's unit. */
export const MAX_QUOTE_AMOUNT = 2 ** 31 - 1;

function keysetKeys(keyset: MintKeyset) {
  return {
    id: keyset.id,
    unit: keyset.unit,
    active: keyset.active,
    input_fee_ppk: keyset.inputFeePpk,
    keys: keyset.publicKeys,
  };
}

function sign(items: CheckedOutputs['items']): IssuedSignature[] {
  return items.map(({ output, point, keyset }) => ({
    output,
    signature: signBlindedMessage(
      point,
      keyset.privateKeys[String(output.amount)] as Uint8Array,
      keyset.id,
      output.amount,
    ),
  }));
}

/** One dev mint's state and operations. */
export class DevMintCore {
  /** Keysets, exposed so tests can rotate them. */
  readonly keysets: KeysetRegistry;
  readonly #ledger: Ledger;
  readonly #quotes = new Map<string, WireMintQuote>();

  constructor(options: KeysetRegistryOptions = {}, ledger = new Ledger()) {
    this.keysets = new KeysetRegistry(options);
    this.#ledger = ledger;
  }

  /** `GET /v1/keys`: active keysets with their keys. */
  activeKeys() {
    const active = this.keysets.all().filter((keyset) => keyset.active);
    return { keysets: active.map(keysetKeys) };
  }

  /** `GET /v1/keys/{id}`: one keyset, active or not. */
  keysFor(id: string) {
    const keyset = this.keysets.get(id);
    if (!keyset) {
      throw new MintFailure(
        ERROR_CODES.keysetUnknown,
        `keyset ${id} is not known`,
      );
    }
    return { keysets: [keysetKeys(keyset)] };
  }

  /** `GET /v1/keysets`: every keyset without keys. */
  keysetList() {
    return {
      keysets: this.keysets.all().map((keyset) => ({
        id: keyset.id,
        unit: keyset.unit,
        active: keyset.active,
        input_fee_ppk: keyset.inputFeePpk,
      })),
    };
  }

  /**
   * `POST /v1/swap`. Inputs are PENDING from the checks until the swap
   * commits (SPENT) or fails (released), as in a real mint.
   */
  async swap(
    body: unknown,
    hooks: SwapHooks = {},
  ): Promise<{ signatures: WireBlindSignature[] }> {
    const { inputs, outputs } = parseSwap(body);
    const checkedIn = checkInputs(inputs, this.keysets, this.#ledger);
    const checkedOut = checkOutputs(outputs, this.keysets, this.#ledger);
    if (checkedOut.unit !== undefined && checkedOut.unit !== checkedIn.unit) {
      throw new MintFailure(
        ERROR_CODES.unitMismatch,
        'inputs and outputs not of same unit',
      );
    }
    if (checkedIn.total - checkedIn.fee !== checkedOut.total) {
      throw new MintFailure(
        ERROR_CODES.unbalanced,
        `transaction is not balanced: inputs ${checkedIn.total}, fee ${checkedIn.fee}, outputs ${checkedOut.total}`,
      );
    }

    const blinded = outputs.map((output) => output.B_);
    this.#ledger.reserve(checkedIn.ys, blinded);
    try {
      await hooks.whilePending?.();
      const issued = sign(checkedOut.items);
      this.#ledger.commit(checkedIn.ys, issued);
      return { signatures: issued.map((entry) => entry.signature) };
    } finally {
      this.#ledger.release(checkedIn.ys, blinded);
    }
  }

  /** `POST /v1/mint/quote/bolt11`: the fake backend pays it at once. */
  createMintQuote(body: unknown): WireMintQuote {
    const { amount, unit } = parseQuoteRequest(body);
    if (!this.keysets.active(unit)) {
      throw new MintFailure(
        ERROR_CODES.unitUnsupported,
        `unit ${unit} is not supported`,
      );
    }
    if (amount < 1 || amount > MAX_QUOTE_AMOUNT) {
      throw new MintFailure(
        ERROR_CODES.amountOutOfRange,
        'amount outside of limit range',
      );
    }

    const invoice = createFakeInvoice(amount, unit);
    const quote: WireMintQuote = {
      quote: randomUUID(),
      request: invoice.request,
      amount,
      unit,
      state: invoice.paid ? 'PAID' : 'UNPAID',
      expiry: Math.floor(Date.now() / 1000) + QUOTE_TTL_S,
    };
    this.#quotes.set(quote.quote, quote);
    return { ...quote };
  }

  /** `GET /v1/mint/quote/bolt11/{quote}`. */
  mintQuote(id: string): WireMintQuote {
    const quote = this.#quotes.get(id);
    if (!quote)
      throw new MintFailure(ERROR_CODES.unspecified, 'quote not found');
    return { ...quote };
  }

  /** `POST /v1/mint/bolt11`: signs outputs worth exactly the quote. */
  mint(body: unknown): { signatures: WireBlindSignature[] } {
    const { quote: id, outputs } = parseMint(body);
    const quote = this.#quotes.get(id);
    if (!quote)
      throw new MintFailure(ERROR_CODES.unspecified, 'quote not found');
    if (quote.state === 'ISSUED') {
      throw new MintFailure(
        ERROR_CODES.quoteIssued,
        'quote has already been issued',
      );
    }
    if (quote.state !== 'PAID') {
      throw new MintFailure(
        ERROR_CODES.quoteNotPaid,
        'quote request is not paid',
      );
    }

    const checked = checkOutputs(outputs, this.keysets, this.#ledger);
    if (checked.unit !== quote.unit) {
      throw new MintFailure(
        ERROR_CODES.unitMismatch,
        'outputs not in the quote unit',
      );
    }
    if (checked.total !== quote.amount) {
      throw new MintFailure(
        ERROR_CODES.unbalanced,
        `outputs ${checked.total} do not match quote amount ${quote.amount}`,
      );
    }

    const issued = sign(checked.items);
    this.#ledger.commit([], issued);
    quote.state = 'ISSUED';
    return { signatures: issued.map((entry) => entry.signature) };
  }

  /** `POST /v1/checkstate` by `Y`; never checks signatures. */
  checkState(body: unknown) {
    const ys = parseYs(body);
    return {
      states: ys.map((Y) => ({
        Y,
        state: this.#ledger.state(Y),
        witness: null,
      })),
    };
  }

  /** `POST /v1/restore`: every requested `B_` the mint has signed. */
  restore(body: unknown) {
    const request = body as { outputs?: unknown } | null;
    const outputs = parseOutputs(request?.outputs);
    const found = outputs
      .map((output) => this.#ledger.issued(output.B_))
      .filter((entry): entry is IssuedSignature => entry !== undefined);

    return {
      outputs: found.map((entry) => entry.output),
      signatures: found.map((entry) => entry.signature),
    };
  }

  /** State of the proof with this `Y`. */
  proofState(y: string): ProofState {
    return this.#ledger.state(y);
  }
}
