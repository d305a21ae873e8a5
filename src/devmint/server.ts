/**
 * The dev mint's HTTP server (node:http): routes requests to the core,
 * answers errors as real mints do (HTTP 400 `{ detail, code }`), injects
 * faults on demand, counts requests per route, and can stop and start
 * again on the same port.
 */
import { loadState } from './state-file.ts';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { otherPoint } from './crypto.ts';
import { MintFailure, malformed } from './errors.ts';
import { FaultBoard, sleep } from './faults.ts';
import type { Fault, FaultRoute, ForgedPart, MintRoute } from './faults.ts';
import type { KeysetRegistryOptions } from './keysets.ts';
import { DevMintCore } from './mint.ts';
import { matchRoute, runRoute } from './routes.ts';

/** Options of {@link DevMintServer}. */
export interface DevMintServerOptions extends KeysetRegistryOptions {
  /** Interface to listen on. Default `127.0.0.1`. */
  host?: string;
  /** TCP port; 0 picks a free one, kept across stop/start. Default 0. */
  port?: number;
  /** Whether to write JSON log lines (pino, stdout). Default false. */
  log?: boolean;
  /**
   * JSON file keeping the key seed and ledger across restarts (overrides
   * `seed`). Default none: state lives in memory.
   */
  stateFile?: string;
  /**
   * Whether the mint announces NUT-12 in `/v1/info` and sends a DLEQ proof
   * with each blind signature; `false` plays a mint without NUT-12.
   * Default true.
   */
  dleq?: boolean;
}

/** Largest request body accepted, bytes. */
const MAX_BODY_BYTES = 1024 * 1024;

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw malformed('body too large');
    chunks.push(chunk);
  }

  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw malformed('body is not JSON');
  }
}

/** A running dev mint: the HTTP face of a {@link DevMintCore}. */
export class DevMintServer {
  /** The mint's state and operations. */
  readonly core: DevMintCore;
  readonly #faults = new FaultBoard();
  readonly #counts = new Map<MintRoute, number>();
  readonly #host: string;
  readonly #log: Logger;
  readonly #stateFile: string | undefined;
  readonly #dleq: boolean;
  #port: number;
  #server: Server | undefined;
  #shutdown = new AbortController();

  constructor(options: DevMintServerOptions = {}) {
    if (options.stateFile) {
      const { seed, ledger } = loadState(options.stateFile);
      this.core = new DevMintCore({ ...options, seed }, ledger);
    } else {
      this.core = new DevMintCore(options);
    }
    this.#stateFile = options.stateFile;
    this.#dleq = options.dleq ?? true;
    this.#host = options.host ?? '127.0.0.1';
    this.#port = options.port ?? 0;
    this.#log = pino({
      name: 'paygress-devmint',
      enabled: options.log ?? false,
      timestamp: pino.stdTimeFunctions.isoTime,
    });
  }

  /** Base URL, e.g. `http://127.0.0.1:3338`, without a trailing slash. */
  get url(): string {
    const host = this.#host.includes(':') ? `[${this.#host}]` : this.#host;
    return `http://${host}:${this.#port}`;
  }

  /** Starts listening (again), on the same port as before. */
  async start(): Promise<void> {
    if (this.#server) return;

    const server = createServer((req, res) => void this.#handle(req, res));
    // Idle connections are the clients' to close (fetch closes its own
    // after about 4 s): a server that closes one at the instant a client
    // sends on it resets that request (ECONNRESET), which a process busy
    // signing, as a dev mint in a test's own process is, makes likely.
    server.keepAliveTimeout = 60_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#port, this.#host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.#port = (server.address() as AddressInfo).port;
    this.#server = server;
    this.#shutdown = new AbortController();

    this.#log.warn(
      {
        url: this.url,
        units: this.core.keysets.units(),
        state: this.#stateFile ?? 'in memory',
      },
      'dev mint for development only: fake lightning backend, every invoice counts as paid',
    );
  }

  /** Stops listening and drops every open connection; state is kept. */
  async stop(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = undefined;

    this.#shutdown.abort(new Error('dev mint stopped'));
    const closed = new Promise<void>((resolve) =>
      server.close(() => resolve()),
    );
    server.closeAllConnections();
    await closed;
    this.#log.info({ url: this.url }, 'dev mint stopped');
  }

  /** Stops for good (same as {@link stop}; state is dropped with the object). */
  async close(): Promise<void> {
    await this.stop();
  }

  /** Sets or clears (with `undefined`) a fault on `route` or on all (`'*'`). */
  setFault(route: FaultRoute, fault: Fault | undefined): void {
    this.#faults.set(route, fault);
  }

  /** Makes a new active keyset for `unit`; the old one goes inactive. */
  rotateKeyset(unit = 'sat'): string {
    return this.core.keysets.rotate(unit).id;
  }

  /** Whether the proof with this `Y` (compressed hex) is spent. */
  isSpent(yHex: string): boolean {
    return this.core.proofState(yHex) === 'SPENT';
  }

  /** How many requests reached `route` since the mint was made. */
  requests(route: MintRoute): number {
    return this.#counts.get(route) ?? 0;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://devmint').pathname;
    const match = matchRoute(req.method ?? '', path);
    if (!match) {
      send(res, 404, { detail: 'not found', code: 0 });
      return;
    }

    const { route } = match;
    this.#counts.set(route, this.requests(route) + 1);
    const fault = this.#faults.for(route);
    const signal = this.#shutdown.signal;
    const wait = () => this.#wait(route, fault, signal);

    try {
      const body = match.hasBody ? await readJson(req) : undefined;
      if (fault?.kind === 'status') {
        send(res, fault.status, { detail: 'injected fault', code: 0 });
        return;
      }
      if (fault?.kind === 'refuse') {
        send(res, 400, { detail: fault.detail, code: fault.code });
        return;
      }
      if (fault?.kind === 'garbage') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"signatures": [ not json');
        return;
      }

      if (fault?.kind === 'queue') await sleep(fault.ms, signal);
      // A swap waits with its inputs PENDING, as a slow real mint would.
      if (route !== 'swap') await wait();
      let answer = await runRoute(this.core, match, body, {
        whilePending: wait,
      });
      if (!this.#dleq) answer = withoutDleq(answer);
      if (fault?.kind === 'forge') answer = forgeSignatures(answer, fault.part);
      if (fault?.kind === 'swap-then-drop') {
        req.socket.destroy();
        this.#log.info({ route }, 'answer dropped by fault');
        return;
      }
      send(res, 200, answer);
      this.#log.debug({ route, status: 200 }, 'request');
    } catch (err) {
      this.#fail(res, route, err, signal);
    }
  }

  async #wait(route: MintRoute, fault: Fault | undefined, signal: AbortSignal) {
    if (fault?.kind === 'delay') await sleep(fault.ms, signal);
    if (fault?.kind === 'hang') await this.#faults.untilUnhung(route, signal);
  }

  #fail(
    res: ServerResponse,
    route: MintRoute,
    err: unknown,
    signal: AbortSignal,
  ) {
    if (signal.aborted) {
      res.destroy();
      return;
    }
    if (err instanceof MintFailure) {
      send(res, 400, { detail: err.detail, code: err.code });
      this.#log.info({ route, status: 400, code: err.code }, 'request refused');
      return;
    }

    send(res, 500, { detail: 'internal error', code: 0 });
    this.#log.error({ route, err }, 'request failed');
  }
}

/**
 * A copy of `answer` whose blind signatures are altered: each DLEQ proof's
 * `s`, or each `C_` (another valid point), with or without the DLEQ
 * proofs. The ledger keeps the originals.
 */
function forgeSignatures(answer: unknown, part: ForgedPart): unknown {
  return withSignatures(answer, (sig) => {
    if (part === 'dleq') {
      return {
        ...sig,
        dleq: sig.dleq && { ...sig.dleq, s: flipLast(sig.dleq.s) },
      };
    }
    const forged = { ...sig, C_: otherPoint(sig.C_) };
    if (part === 'C_ without dleq') delete forged.dleq;
    return forged;
  });
}

/**
 * `answer` as a mint without NUT-12 gives it: `/v1/info` says NUT-12 is
 * not supported, and blind signatures come without DLEQ proofs.
 */
function withoutDleq(answer: unknown): unknown {
  const nuts = (answer as { nuts?: Record<string, unknown> }).nuts;
  if (nuts !== undefined) {
    return {
      ...(answer as object),
      nuts: { ...nuts, 12: { supported: false } },
    };
  }
  return withSignatures(answer, ({ dleq: _dleq, ...signature }) => signature);
}

type Signature = { C_: string; dleq?: { e: string; s: string } };

/** `answer` with each of its blind signatures changed, if it has any. */
function withSignatures(
  answer: unknown,
  change: (signature: Signature) => Signature,
): unknown {
  const signatures = (answer as { signatures?: unknown })?.signatures;
  if (!Array.isArray(signatures)) return answer;
  return {
    ...(answer as object),
    signatures: (signatures as Signature[]).map(change),
  };
}

function flipLast(hex: string): string {
  return hex.slice(0, -1) + (hex.endsWith('0') ? '1' : '0');
}
