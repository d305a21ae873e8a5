/**
 * A hand-written protobuf wire encoder and decoder for the Envoy ext_authz
 * v3 and grpc.health.v1 messages, built from the field numbers Envoy and
 * gRPC publish. It shares nothing with Paygress's `proto/` files or
 * proto-loader, so a wrong field number there cannot hide behind a matching
 * mistake here. The response decoders are strict: a field they do not
 * expect fails the test.
 */
import * as grpc from '@grpc/grpc-js';

// Wire types (protobuf encoding spec).
const VARINT = 0;
const I64 = 1;
const LEN = 2;
const I32 = 5;

/** One field as read off the wire. */
export interface WireField {
  /** Field number. */
  no: number;
  /** Wire type: 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32. */
  wire: number;
  /** The varint, or the raw bytes of the other wire types. */
  value: bigint | Buffer;
}

function varint(n: number | bigint): Buffer {
  let v = BigInt(n);
  if (v < 0n) v += 1n << 64n;
  const out: number[] = [];
  do {
    const low = Number(v & 0x7fn);
    v >>= 7n;
    out.push(v === 0n ? low : low | 0x80);
  } while (v !== 0n);
  return Buffer.from(out);
}

function tag(no: number, wire: number): Buffer {
  return varint((no << 3) | wire);
}

/** A varint field. */
export function uintField(no: number, n: number | bigint): Buffer {
  return Buffer.concat([tag(no, VARINT), varint(n)]);
}

/** A length-delimited field holding bytes, a string or a nested message. */
export function lenField(no: number, data: Buffer | string): Buffer {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  return Buffer.concat([tag(no, LEN), varint(bytes.length), bytes]);
}

/** A nested message field from its already encoded fields. */
export function messageField(no: number, ...fields: Buffer[]): Buffer {
  return lenField(no, Buffer.concat(fields));
}

/** A map<string,string> field: one entry message (key 1, value 2) each. */
export function mapField(no: number, entries: [string, string][]): Buffer {
  return Buffer.concat(
    entries.map(([k, v]) => messageField(no, lenField(1, k), lenField(2, v))),
  );
}

/** Splits an encoded message into its fields, in wire order. */
export function decodeFields(buf: Buffer): WireField[] {
  const fields: WireField[] = [];
  let at = 0;
  const readVarint = (): bigint => {
    let result = 0n;
    for (let shift = 0n; ; shift += 7n) {
      if (at >= buf.length) throw new Error('truncated varint');
      const byte = buf[at++]!;
      result |= BigInt(byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return result;
    }
  };
  const take = (n: number): Buffer => {
    if (at + n > buf.length) throw new Error('truncated field');
    const out = buf.subarray(at, at + n);
    at += n;
    return out;
  };

  while (at < buf.length) {
    const key = Number(readVarint());
    const no = key >>> 3;
    const wire = key & 7;
    if (wire === VARINT) fields.push({ no, wire, value: readVarint() });
    else if (wire === I64) fields.push({ no, wire, value: take(8) });
    else if (wire === LEN) {
      fields.push({ no, wire, value: take(Number(readVarint())) });
    } else if (wire === I32) fields.push({ no, wire, value: take(4) });
    else throw new Error(`unsupported wire type ${wire}`);
  }
  return fields;
}

function asBytes(f: WireField): Buffer {
  if (f.wire !== LEN) throw new Error(`field ${f.no} is not length-delimited`);
  return f.value as Buffer;
}

function asInt(f: WireField): number {
  if (f.wire !== VARINT) throw new Error(`field ${f.no} is not a varint`);
  return Number(BigInt.asIntN(32, f.value as bigint));
}

function unexpected(message: string, f: WireField): never {
  throw new Error(`unexpected field ${f.no} (wire ${f.wire}) in ${message}`);
}

// ---- CheckRequest -------------------------------------------------------

/** A header as Envoy's `encode_raw_headers` sends it (HeaderValue). */
export interface RawHeader {
  key: string;
  value?: string;
  rawValue?: Buffer;
}

/** What to put in AttributeContext.HttpRequest (field numbers beside). */
export interface HttpRequestSpec {
  id?: string; // 1
  method?: string; // 2
  headers?: [string, string][]; // 3, map<string,string>
  path?: string; // 4
  host?: string; // 5
  scheme?: string; // 6
  size?: number; // 9, int64
  protocol?: string; // 10
  body?: string; // 11
  headerMap?: RawHeader[]; // 13, HeaderMap.headers = 1
}

/** What to put in a CheckRequest. */
export interface CheckRequestSpec {
  /** Client address: AttributeContext.source (1) .address (1). */
  source?: { address: string; port: number };
  /** The HTTP request; absent for a TCP check. */
  http?: HttpRequestSpec;
  /** context_extensions (10), which Paygress ignores. */
  contextExtensions?: [string, string][];
}

function socketPeer(no: number, address: string, port: number): Buffer {
  // Peer.address (1) -> Address.socket_address (1) -> SocketAddress
  // { address = 2, port_value = 3 }; Peer.principal = 4.
  const socket = messageField(1, lenField(2, address), uintField(3, port));
  return messageField(no, messageField(1, socket), lenField(4, 'spiffe://x'));
}

function httpRequest(h: HttpRequestSpec): Buffer {
  const parts: Buffer[] = [];
  if (h.id !== undefined) parts.push(lenField(1, h.id));
  if (h.method !== undefined) parts.push(lenField(2, h.method));
  if (h.headers !== undefined) parts.push(mapField(3, h.headers));
  if (h.path !== undefined) parts.push(lenField(4, h.path));
  if (h.host !== undefined) parts.push(lenField(5, h.host));
  if (h.scheme !== undefined) parts.push(lenField(6, h.scheme));
  if (h.size !== undefined) parts.push(uintField(9, h.size));
  if (h.protocol !== undefined) parts.push(lenField(10, h.protocol));
  if (h.body !== undefined) parts.push(lenField(11, h.body));
  if (h.headerMap !== undefined) {
    const values = h.headerMap.map((r) =>
      messageField(
        1,
        lenField(1, r.key),
        ...(r.value === undefined ? [] : [lenField(2, r.value)]),
        ...(r.rawValue === undefined ? [] : [lenField(3, r.rawValue)]),
      ),
    );
    parts.push(messageField(13, ...values));
  }
  return Buffer.concat(parts);
}

/** Encodes a CheckRequest the way Envoy lays it out. */
export function encodeCheckRequest(spec: CheckRequestSpec): Buffer {
  const attributes: Buffer[] = [];
  if (spec.source !== undefined) {
    attributes.push(socketPeer(1, spec.source.address, spec.source.port));
  }
  attributes.push(socketPeer(2, '10.0.0.2', 8080));

  // Request.time (1) is a Timestamp { seconds = 1, nanos = 2 }.
  const time = messageField(1, uintField(1, 1_700_000_000), uintField(2, 5));
  const http =
    spec.http === undefined ? [] : [lenField(2, httpRequest(spec.http))];
  attributes.push(messageField(4, time, ...http));
  if (spec.contextExtensions !== undefined) {
    attributes.push(mapField(10, spec.contextExtensions));
  }
  return messageField(1, ...attributes);
}

// ---- CheckResponse ------------------------------------------------------

/** A decoded HeaderValueOption. */
export interface HeaderOption {
  key: string;
  value: string;
  /** append_action (3); 0 when unset on the wire. */
  appendAction: number;
}

/** A decoded CheckResponse; absent messages stay undefined. */
export interface CheckResponse {
  status?: { code: number; message: string };
  deniedResponse?: {
    httpStatus: number;
    headers: HeaderOption[];
    body: string;
  };
  okResponse?: {
    headers: HeaderOption[];
    headersToRemove: string[];
    responseHeadersToAdd: HeaderOption[];
  };
}

function decodeHeaderOption(buf: Buffer): HeaderOption {
  const option: HeaderOption = { key: '', value: '', appendAction: 0 };
  for (const f of decodeFields(buf)) {
    if (f.no === 1) {
      for (const h of decodeFields(asBytes(f))) {
        if (h.no === 1) option.key = asBytes(h).toString('utf8');
        else if (h.no === 2) option.value = asBytes(h).toString('utf8');
        else unexpected('HeaderValue', h);
      }
    } else if (f.no === 3) option.appendAction = asInt(f);
    else unexpected('HeaderValueOption', f);
  }
  return option;
}

function decodeStatus(buf: Buffer): { code: number; message: string } {
  const status = { code: 0, message: '' };
  for (const f of decodeFields(buf)) {
    if (f.no === 1) status.code = asInt(f);
    else if (f.no === 2) status.message = asBytes(f).toString('utf8');
    else unexpected('google.rpc.Status', f);
  }
  return status;
}

function decodeHttpStatus(buf: Buffer): number {
  let code = 0;
  for (const f of decodeFields(buf)) {
    if (f.no === 1) code = asInt(f);
    else unexpected('HttpStatus', f);
  }
  return code;
}

function decodeDenied(buf: Buffer): CheckResponse['deniedResponse'] {
  const denied = { httpStatus: 0, headers: [] as HeaderOption[], body: '' };
  for (const f of decodeFields(buf)) {
    if (f.no === 1) denied.httpStatus = decodeHttpStatus(asBytes(f));
    else if (f.no === 2) denied.headers.push(decodeHeaderOption(asBytes(f)));
    else if (f.no === 3) denied.body = asBytes(f).toString('utf8');
    else unexpected('DeniedHttpResponse', f);
  }
  return denied;
}

function decodeOk(buf: Buffer): CheckResponse['okResponse'] {
  const ok = {
    headers: [] as HeaderOption[],
    headersToRemove: [] as string[],
    responseHeadersToAdd: [] as HeaderOption[],
  };
  for (const f of decodeFields(buf)) {
    if (f.no === 2) ok.headers.push(decodeHeaderOption(asBytes(f)));
    else if (f.no === 5) ok.headersToRemove.push(asBytes(f).toString('utf8'));
    else if (f.no === 6) {
      ok.responseHeadersToAdd.push(decodeHeaderOption(asBytes(f)));
    } else unexpected('OkHttpResponse', f);
  }
  return ok;
}

/** Decodes a CheckResponse strictly: status 1, denied 2, ok 3. */
export function decodeCheckResponse(buf: Buffer): CheckResponse {
  const response: CheckResponse = {};
  for (const f of decodeFields(buf)) {
    if (f.no === 1) response.status = decodeStatus(asBytes(f));
    else if (f.no === 2) response.deniedResponse = decodeDenied(asBytes(f));
    else if (f.no === 3) response.okResponse = decodeOk(asBytes(f));
    else unexpected('CheckResponse', f);
  }
  return response;
}

// ---- grpc.health.v1 -----------------------------------------------------

/** HealthCheckRequest { service = 1 }. */
export function encodeHealthCheckRequest(service: string): Buffer {
  return service === '' ? Buffer.alloc(0) : lenField(1, service);
}

/** HealthCheckResponse { status = 1 }: 1 SERVING, 2 NOT_SERVING, 3 unknown. */
export function decodeHealthCheckResponse(buf: Buffer): number {
  let status = 0;
  for (const f of decodeFields(buf)) {
    if (f.no === 1) status = asInt(f);
    else unexpected('HealthCheckResponse', f);
  }
  return status;
}

// ---- raw calls ----------------------------------------------------------

const identity = (b: Buffer): Buffer => b;

/** Result of a unary call made with raw bytes. */
export type RawResult =
  { ok: true; bytes: Buffer } | { ok: false; error: grpc.ServiceError };

/** Makes a unary call sending and receiving raw message bytes. */
export function callRaw(
  client: grpc.Client,
  method: string,
  request: Buffer,
): Promise<RawResult> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(method, identity, identity, request, (err, res) =>
      resolve(err ? { ok: false, error: err } : { ok: true, bytes: res! }),
    );
  });
}
