/**
 * Request bodies of the mint API as the dev mint accepts them, parsed from
 * untrusted JSON. Anything malformed is refused before any state changes.
 */
import { malformed } from './errors.ts';

/** An input proof (NUT-00); `witness` is accepted and ignored. */
export interface WireProof {
  id: string;
  amount: number;
  secret: string;
  C: string;
  /** NUT-11 witness (JSON string), when the secret has conditions. */
  witness?: string;
}

/** An output to be signed (NUT-00 `BlindedMessage`). */
export interface WireBlindedMessage {
  id: string;
  amount: number;
  B_: string;
}

/** Limit on inputs or outputs in one request, as real mints cap them. */
export const MAX_ITEMS = 1000;

function record(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw malformed(`${what} must be an object`);
  }
  return value as Record<string, unknown>;
}

function text(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw malformed(`${what} must be a non-empty string`);
  }
  return value;
}

function amount(value: unknown, what: string): number {
  if (!Number.isSafeInteger(value) || (value as number) < 0) {
    throw malformed(`${what} must be a non-negative integer`);
  }
  return value as number;
}

function list(value: unknown, what: string): unknown[] {
  if (!Array.isArray(value)) throw malformed(`${what} must be an array`);
  if (value.length > MAX_ITEMS) throw malformed(`too many ${what}`);
  return value;
}

/** Parses `inputs` of a swap. */
export function parseProofs(value: unknown): WireProof[] {
  return list(value, 'inputs').map((item, i) => {
    const proof = record(item, `inputs[${i}]`);
    return {
      id: text(proof.id, `inputs[${i}].id`),
      amount: amount(proof.amount, `inputs[${i}].amount`),
      secret: text(proof.secret, `inputs[${i}].secret`),
      C: text(proof.C, `inputs[${i}].C`),
      ...(proof.witness === undefined
        ? {}
        : {
            witness:
              typeof proof.witness === 'string'
                ? proof.witness
                : JSON.stringify(proof.witness),
          }),
    };
  });
}

/** Parses `outputs` of a swap, mint or restore. */
export function parseOutputs(value: unknown): WireBlindedMessage[] {
  return list(value, 'outputs').map((item, i) => {
    const output = record(item, `outputs[${i}]`);
    return {
      id: text(output.id, `outputs[${i}].id`),
      amount: amount(output.amount, `outputs[${i}].amount`),
      B_: text(output.B_, `outputs[${i}].B_`),
    };
  });
}

/** Parses a swap body `{ inputs, outputs }`. */
export function parseSwap(body: unknown): {
  inputs: WireProof[];
  outputs: WireBlindedMessage[];
} {
  const request = record(body, 'body');
  const inputs = parseProofs(request.inputs);
  if (inputs.length === 0) throw malformed('inputs must not be empty');

  return { inputs, outputs: parseOutputs(request.outputs) };
}

/** Parses a NUT-04 mint body `{ quote, outputs }`. */
export function parseMint(body: unknown): {
  quote: string;
  outputs: WireBlindedMessage[];
} {
  const request = record(body, 'body');
  return {
    quote: text(request.quote, 'quote'),
    outputs: parseOutputs(request.outputs),
  };
}

/** Parses a NUT-04 quote body `{ amount, unit, description? }`. */
export function parseQuoteRequest(body: unknown): {
  amount: number;
  unit: string;
  description?: string;
} {
  const request = record(body, 'body');
  const description = request.description;
  if (description !== undefined && typeof description !== 'string') {
    throw malformed('description must be a string');
  }

  return {
    amount: amount(request.amount, 'amount'),
    unit: text(request.unit, 'unit'),
    ...(description === undefined ? {} : { description }),
  };
}

/** Parses a NUT-07 body `{ Ys }`. */
export function parseYs(body: unknown): string[] {
  const request = record(body, 'body');
  return list(request.Ys, 'Ys').map((y, i) => text(y, `Ys[${i}]`));
}
