/**
 * What the scenarios send: the headers each proxy adds, a paid grant, a
 * spent token, and framed gRPC Check requests on disk for h2load. Tokens
 * and grants are bearer credentials for the bench's own dev mint; they
 * live in memory and in files under a private temp directory only.
 */
import * as grpc from '@grpc/grpc-js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mintToken } from '../../test/support/wallet.ts';
import {
  callRaw,
  decodeCheckResponse,
  encodeCheckRequest,
} from '../../test/support/envoy-wire.ts';
import type { Deny } from '../../src/core/model.ts';
import { paymentRequestFor } from '../../src/core/payment-request.ts';
import type { HeaderList } from './load.ts';

/** Host of the protected application in every scenario. */
export const APP_HOST = 'app.example';
/** Per-request priced path (the default price). */
export const PRICED_PATH = '/premium';
/** Path of the rate rule that sells grants. */
export const METERED_PATH = '/metered';
/** The ext_authz method path. */
export const CHECK_PATH = '/envoy.service.auth.v3.Authorization/Check';

/** What Traefik sends to forward-auth for `GET path`. */
export function forwardHeaders(path: string): HeaderList {
  return [
    ['X-Forwarded-Method', 'GET'],
    ['X-Forwarded-Proto', 'https'],
    ['X-Forwarded-Host', APP_HOST],
    ['X-Forwarded-Uri', path],
    ['X-Forwarded-For', '203.0.113.7'],
  ];
}

/** What nginx's auth_request location sends for `GET path`. */
export function nginxHeaders(path: string): HeaderList {
  return [
    ['X-Original-URL', `https://${APP_HOST}${path}`],
    ['X-Original-Method', 'GET'],
    ['X-Real-IP', '203.0.113.7'],
  ];
}

/** One forward-auth request; resolves with status and response headers. */
export async function forward(
  base: string,
  path: string,
  extra: HeaderList = [],
): Promise<{ status: number; headers: Headers }> {
  const res = await fetch(`${base}/auth/forward`, {
    headers: [...forwardHeaders(path), ...extra].map(([k, v]) => [k, v]),
  });
  await res.arrayBuffer();
  return { status: res.status, headers: res.headers };
}

/**
 * Pays once on the rate route and returns the grant credential from
 * `X-Paygress-Grant`, or undefined when Paygress gave none.
 */
export async function buyGrant(
  base: string,
  mintUrl: string,
): Promise<string | undefined> {
  const token = await mintToken(mintUrl, 100);
  const paid = await forward(base, METERED_PATH, [['X-Cashu', token]]);
  if (paid.status !== 200)
    throw new Error(`paying for a grant: ${paid.status}`);
  return paid.headers.get('x-paygress-grant') ?? undefined;
}

/** A token redeemed once already: every later use is a replay. */
export async function spentToken(
  base: string,
  mintUrl: string,
): Promise<string> {
  const token = await mintToken(mintUrl, 100);
  const paid = await forward(base, PRICED_PATH, [['X-Cashu', token]]);
  if (paid.status !== 200) throw new Error(`spending a token: ${paid.status}`);
  return token;
}

/** A gRPC length-prefixed message: flag 0, 4-byte big-endian length, bytes. */
export function frame(message: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(message.length, 1);
  return Buffer.concat([head, message]);
}

/** Encodes Envoy's CheckRequest for `GET path` with extra headers. */
export function checkRequest(path: string, extra: HeaderList = []): Buffer {
  const headers: [string, string][] = [
    [':authority', APP_HOST],
    [':path', path],
    [':method', 'GET'],
    ...extra.map(([k, v]) => [k.toLowerCase(), v] as [string, string]),
  ];
  return encodeCheckRequest({
    source: { address: '203.0.113.7', port: 40000 },
    http: {
      id: '1',
      method: 'GET',
      headers,
      path,
      host: APP_HOST,
      scheme: 'https',
    },
  });
}

/** Writes one framed Check request to `dir/name` and returns the path. */
export function checkFile(
  dir: string,
  name: string,
  path: string,
  extra: HeaderList = [],
): string {
  const file = join(dir, name);
  writeFileSync(file, frame(checkRequest(path, extra)), { mode: 0o600 });
  return file;
}

/** Sends one Check and says whether Envoy would let the request through. */
export async function checkOnce(
  port: number,
  path: string,
  extra: HeaderList = [],
): Promise<{ allowed: boolean; httpStatus?: number }> {
  const client = new grpc.Client(
    `127.0.0.1:${port}`,
    grpc.credentials.createInsecure(),
  );
  try {
    const result = await callRaw(client, CHECK_PATH, checkRequest(path, extra));
    if (!result.ok) throw new Error(`Check failed: ${result.error.message}`);
    const response = decodeCheckResponse(result.bytes);
    if (response.okResponse || !response.deniedResponse)
      return { allowed: true };
    return { allowed: false, httpStatus: response.deniedResponse.httpStatus };
  } finally {
    client.close();
  }
}

const REFUSAL_PRICE = {
  amount: 100,
  unit: 'sat',
  mints: ['http://127.0.0.1:3338'],
};

/**
 * The refusal the gate makes for a request without a token on a 100 sat
 * route: frozen, as the gate's is, so adapters render it once.
 */
export const NO_TOKEN_REFUSAL: Deny = Object.freeze({
  kind: 'deny',
  reason: 'PAYGRESS_PAYMENT_REQUIRED',
  message: 'payment required: send a Cashu token of 100 sat in X-Cashu',
  fault: 'payer',
  price: REFUSAL_PRICE,
  paymentRequest: paymentRequestFor(REFUSAL_PRICE),
});
