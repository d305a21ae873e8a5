/**
 * A minimal CBOR encoder (RFC 8949) for crafting `cashuB` tokens in tests,
 * including ones no wallet would write: negative, fractional and huge
 * amounts, wrong field types, deep nesting, and bytes cut short. It is
 * deliberately independent of cashu-ts, whose public binary encoder only
 * writes well-formed tokens.
 */

/** Bytes spliced into the output exactly as given (already CBOR, or not). */
export class RawCbor {
  /** The bytes to splice in. */
  readonly bytes: Uint8Array;

  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
  }
}

/**
 * A value the encoder can write: integers (number or bigint, either sign),
 * other numbers as float64, text, bytes, arrays, string-keyed maps,
 * booleans, null, undefined, and {@link RawCbor}.
 */
export type CborValue =
  | number
  | bigint
  | string
  | boolean
  | null
  | undefined
  | Uint8Array
  | RawCbor
  | readonly CborValue[]
  | { readonly [key: string]: CborValue };

const MAX_U64 = (1n << 64n) - 1n;

/** Encodes `value` as CBOR. */
export function encodeCbor(value: CborValue): Uint8Array {
  const out: number[] = [];
  write(out, value);
  return Uint8Array.from(out);
}

/** A `cashuB` token string from a V4 token value (CBOR, base64url). */
export function cashuB(token: CborValue): string {
  return `cashuB${Buffer.from(encodeCbor(token)).toString('base64url')}`;
}

/** The CBOR head of an array of `length` items (items to follow). */
export function arrayHead(length: number | bigint): RawCbor {
  const out: number[] = [];
  head(out, 4, BigInt(length));
  return new RawCbor(Uint8Array.from(out));
}

/**
 * `depth` one-item arrays nested around the integer 1, built without
 * recursion so that any depth can be written.
 */
export function nestedArrays(depth: number): RawCbor {
  const bytes = new Uint8Array(depth + 1).fill(0x81);
  bytes[depth] = 0x01;
  return new RawCbor(bytes);
}

function write(out: number[], value: CborValue): void {
  if (value instanceof RawCbor) push(out, value.bytes);
  else if (value === false) out.push(0xf4);
  else if (value === true) out.push(0xf5);
  else if (value === null) out.push(0xf6);
  else if (value === undefined) out.push(0xf7);
  else if (typeof value === 'bigint') integer(out, value);
  else if (typeof value === 'number') number(out, value);
  else if (typeof value === 'string') text(out, value);
  else if (value instanceof Uint8Array) {
    head(out, 2, BigInt(value.length));
    push(out, value);
  } else if (Array.isArray(value)) {
    head(out, 4, BigInt(value.length));
    for (const item of value) write(out, item);
  } else {
    const entries = Object.entries(value as Record<string, CborValue>);
    head(out, 5, BigInt(entries.length));
    for (const [key, item] of entries) {
      text(out, key);
      write(out, item);
    }
  }
}

function number(out: number[], value: number): void {
  if (Number.isSafeInteger(value)) {
    integer(out, BigInt(value));
    return;
  }
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setFloat64(0, value);
  out.push(0xfb, ...bytes);
}

function integer(out: number[], value: bigint): void {
  // Beyond 64 bits CBOR needs a bignum tag (2 or 3) around the bytes.
  const magnitude = value < 0n ? -1n - value : value;
  if (magnitude > MAX_U64) {
    head(out, 6, value < 0n ? 3n : 2n);
    const hex = magnitude.toString(16);
    write(out, Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex'));
    return;
  }
  head(out, value < 0n ? 1 : 0, magnitude);
}

function text(out: number[], value: string): void {
  const bytes = Buffer.from(value, 'utf8');
  head(out, 3, BigInt(bytes.length));
  push(out, bytes);
}

// A loop, not a spread: a spread of a large buffer overflows the stack.
function push(out: number[], bytes: Uint8Array): void {
  for (const byte of bytes) out.push(byte);
}

function head(out: number[], major: number, arg: bigint): void {
  const m = major << 5;
  if (arg < 24n) out.push(m | Number(arg));
  else if (arg < 0x100n) out.push(m | 24, Number(arg));
  else if (arg < 0x10000n) out.push(m | 25, ...be(arg, 2));
  else if (arg < 0x100000000n) out.push(m | 26, ...be(arg, 4));
  else out.push(m | 27, ...be(arg, 8));
}

function be(value: bigint, size: number): number[] {
  const bytes: number[] = [];
  for (let i = size - 1; i >= 0; i--) {
    bytes.push(Number((value >> BigInt(i * 8)) & 0xffn));
  }
  return bytes;
}
