/**
 * A whole Paygress for tests: a dev mint on loopback, Paygress built by the
 * real composition root with a fresh data directory, and one client per
 * protocol that sends what the real proxy sends and reads the answer back
 * into one shape, so a scenario can be asserted for every protocol alike.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { startApp, type App } from '../../src/app.ts';
import type { Clock, Provisioner } from '../../src/core/ports.ts';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { startDevMint, type DevMint } from '../../src/devmint/index.ts';
import {
  callRaw,
  decodeCheckResponse,
  encodeCheckRequest,
} from './envoy-wire.ts';
import { tempDir } from './temp-dir.ts';

/** A logger at `level` whose JSON lines are kept, parsed, in `lines`. */
export function keptLog(level: 'info' | 'warn' | 'error' = 'info'): {
  logger: Logger;
  lines: Record<string, unknown>[];
} {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      }
      done();
    },
  });
  return { logger: createLogger(level, sink), lines };
}

/** Options of {@link startStack}. */
export interface StackOptions {
  /** Per-request price in sat. Default 100. */
  price?: number;
  /** Mint input fee, ppk per proof. Default 0. */
  inputFeePpk?: number;
  /** Extra environment for loadConfig. */
  env?: Record<string, string>;
  /** Data directory to reuse (for restart tests). Default a new temp dir. */
  dataDir?: string;
  /** Use this mint instead of starting one. */
  mint?: DevMint;
  /** YAML configuration file, read under the same environment. */
  configFile?: string;
  /** Clock for grants and expiry. Default the system clock. */
  clock?: Clock;
  /** Logger of Paygress. Default a silent one. */
  logger?: Logger;
  /** Pod provisioner. Default none (provisioning off). */
  provisioner?: Provisioner;
}

/** A running mint + Paygress. */
export interface Stack {
  mint: DevMint;
  app: App;
  dataDir: string;
  /** `http://127.0.0.1:PORT` of Paygress's HTTP listener. */
  base: string;
  grpc: grpc.Client;
  close(): Promise<void>;
}

export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const mint =
    options.mint ??
    (await startDevMint({ inputFeePpk: options.inputFeePpk ?? 0 }));
  const dataDir = options.dataDir ?? tempDir('paygress-test-');
  const config = loadConfig({
    ...(options.configFile ? { file: options.configFile } : {}),
    env: {
      PAYGRESS_MINTS: mint.url,
      PAYGRESS_HTTP_HOST: '127.0.0.1',
      PAYGRESS_HTTP_PORT: '0',
      PAYGRESS_GRPC_HOST: '127.0.0.1',
      PAYGRESS_GRPC_PORT: '0',
      PAYGRESS_DATA_DIR: dataDir,
      PAYGRESS_MINT_TIMEOUT_MS: '2000',
      PAYGRESS_SHUTDOWN_GRACE_MS: '1000',
      DEFAULT_PAYMENT_AMOUNT: String(options.price ?? 100),
      ...options.env,
    },
  });
  const app = await startApp({
    config,
    logger: options.logger ?? createLogger('silent'),
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.provisioner ? { provisioner: options.provisioner } : {}),
  });
  const grpcClient = new grpc.Client(
    `127.0.0.1:${app.grpcPort}`,
    grpc.credentials.createInsecure(),
  );

  return {
    mint,
    app,
    dataDir,
    base: `http://127.0.0.1:${app.httpPort}`,
    grpc: grpcClient,
    async close() {
      grpcClient.close();
      await app.close();
      if (!options.mint) await mint.close();
      if (!options.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** The three ways a request reaches Paygress. */
export const PROTOCOLS = ['forward', 'nginx', 'ext-authz'] as const;
export type ProtocolName = (typeof PROTOCOLS)[number];

/** A decision as any protocol delivered it. */
export interface Outcome {
  allowed: boolean;
  /** HTTP status the client (or Envoy) would see; 0 for an RPC error. */
  status: number;
  /** PAYGRESS_* reason of a deny; undefined on allow. */
  reason?: string;
  /** gRPC status code of an RPC error, when there was one. */
  rpcError?: number;
  /** Headers for the upstream (allow) or the client (deny), lower-cased. */
  headers: Record<string, string>;
  /** NUT-18 payment request offered, if any. */
  paymentRequest?: string;
  /** Body of a forward-auth or Envoy deny. */
  body?: string;
}

/** Headers of the original client request. */
export type ClientHeaders = Record<string, string>;

/**
 * Sends one original request (`GET https://app.example/premium` unless
 * told otherwise) through `protocol` and reads back the decision.
 */
export async function send(
  stack: Stack,
  protocol: ProtocolName,
  headers: ClientHeaders = {},
  target: {
    method?: string;
    path?: string;
    host?: string;
    scheme?: 'http' | 'https';
  } = {},
): Promise<Outcome> {
  const method = target.method ?? 'GET';
  const path = target.path ?? '/premium';
  const host = target.host ?? 'app.example';
  const scheme = target.scheme ?? 'https';
  if (protocol === 'ext-authz') {
    return sendEnvoy(stack, headers, method, path, host, scheme);
  }

  const proxyHeaders =
    protocol === 'forward'
      ? {
          // What Traefik sends with trustForwardHeader: false.
          'X-Forwarded-Method': method,
          'X-Forwarded-Proto': scheme,
          'X-Forwarded-Host': host,
          'X-Forwarded-Uri': path,
          'X-Forwarded-For': '203.0.113.7',
        }
      : {
          // What ingress-nginx's generated auth location sends.
          'X-Original-URL': `${scheme}://${host}${path}`,
          'X-Original-Method': method,
          'X-Sent-From': 'nginx-ingress-controller',
          'X-Real-IP': '203.0.113.7',
        };
  const res = await fetch(`${stack.base}/auth/${protocol}`, {
    headers: { ...headers, ...proxyHeaders },
  });
  const body = await res.text();
  const out = Object.fromEntries(res.headers);
  const allowed = res.status === 200;
  return {
    allowed,
    status: res.status,
    reason: allowed ? undefined : out['x-paygress-reason'],
    headers: out,
    paymentRequest: out['x-cashu']?.startsWith('creq')
      ? out['x-cashu']
      : undefined,
    body,
  };
}

async function sendEnvoy(
  stack: Stack,
  headers: ClientHeaders,
  method: string,
  path: string,
  host: string,
  scheme: string,
): Promise<Outcome> {
  const lower: [string, string][] = [
    [':authority', host],
    [':path', path],
    [':method', method],
    ...Object.entries(headers).map(
      ([k, v]) => [k.toLowerCase(), v] as [string, string],
    ),
  ];
  const request = encodeCheckRequest({
    source: { address: '203.0.113.7', port: 40000 },
    http: { id: '1234', method, headers: lower, path, host, scheme },
  });
  const result = await callRaw(
    stack.grpc,
    '/envoy.service.auth.v3.Authorization/Check',
    request,
  );
  if (!result.ok) {
    return {
      allowed: false,
      status: 0,
      rpcError: result.error.code,
      reason: /PAYGRESS_[A-Z_]+/.exec(result.error.details ?? '')?.[0],
      headers: {},
    };
  }

  const response = decodeCheckResponse(result.bytes);
  if (response.okResponse) {
    return {
      allowed: (response.status?.code ?? 0) === 0,
      status: 200,
      headers: Object.fromEntries(
        response.okResponse.headers.map((h) => [h.key.toLowerCase(), h.value]),
      ),
    };
  }
  const denied = response.deniedResponse;
  const out = Object.fromEntries(
    (denied?.headers ?? []).map((h) => [h.key.toLowerCase(), h.value]),
  );
  return {
    allowed: false,
    status: denied?.httpStatus ?? 403,
    reason: out['x-paygress-reason'],
    headers: out,
    paymentRequest: out['x-cashu']?.startsWith('creq')
      ? out['x-cashu']
      : undefined,
    body: denied?.body,
  };
}

/**
 * A configuration file with one dear route, `/dear` at 1,000 sat, beside
 * the default price: for tests of a payment offered for a dearer request.
 */
export function dearRouteConfig(): string {
  const file = join(tempDir('paygress-dear-'), 'p.yaml');
  writeFileSync(
    file,
    `pricing:
  rules:
    - name: dear
      match: { path: /dear }
      price: { amount: 1000, unit: sat }
`,
  );
  return file;
}

/**
 * A configuration file with one rate route, `/compute` at 10 sat a
 * minute for up to `maxSeconds`, its grant key, and `more` (YAML of the
 * other sections, e.g. `provisioning:`) after them.
 */
export function rateRouteConfig(maxSeconds: number, more = ''): string {
  const file = join(tempDir('paygress-rate-'), 'p.yaml');
  writeFileSync(
    file,
    `pricing:
  rules:
    - name: compute
      match: { path: /compute }
      rate: { amount: 10, unit: sat, perSeconds: 60, minSeconds: 60, maxSeconds: ${maxSeconds} }
grants:
  key: a-test-grant-key-that-is-long-enough-0123456789
${more}`,
  );
  return file;
}
