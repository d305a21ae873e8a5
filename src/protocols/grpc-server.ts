/**
 * The gRPC listener: Envoy's ext_authz service and the standard health
 * service on one grpc-js server.
 */
import {
  createServer,
  type AddressInfo,
  type Server,
  type Socket,
} from 'node:net';
import { format } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { hostPort } from '../host-port.ts';
import type { Decider } from '../core/model.ts';
import { redactSecrets } from '../core/redact.ts';
import {
  DEFAULT_MAX_CONNECTIONS,
  limitConnections,
} from './connection-guard.ts';
import type { DecisionObserver } from './decision-log.ts';
import { createExtAuthzService, type ExtAuthzService } from './ext-authz.ts';
import { HealthService } from './grpc-health.ts';

/** Service name health probes may ask about besides the empty name. */
export const EXT_AUTHZ_SERVICE_NAME = 'envoy.service.auth.v3.Authorization';

/** Options for {@link startGrpcServer}. */
export interface GrpcServerOptions {
  /** Address to listen on, e.g. `127.0.0.1`, `0.0.0.0` or `::`. */
  host: string;
  /** TCP port to listen on; 0 picks a free one (see `GrpcServer.port`). */
  port: number;
  /** The core's decision entry point. */
  decider: Decider;
  /** Parent logger for every check. */
  logger: Logger;
  /** Called once per decision, for metrics. */
  observe?: DecisionObserver;
  /**
   * The decision log, shared by every listener of the process. Default
   * one of this listener's own, with the default policy and limit.
   */
  decisionLog?: DecisionObserver;
  /**
   * Connections open at once; past it new ones are closed unread.
   * Default {@link DEFAULT_MAX_CONNECTIONS}.
   */
  maxConnections?: number;
  /** Called for each connection closed for being over the limit. */
  connectionDropped?: () => void;
  /**
   * A connection's age limit and the grace its calls get after it, in ms.
   * Default LIMITS' (10 minutes and 1 minute); tests shorten them.
   */
  connectionAge?: { readonly maxMs: number; readonly graceMs: number };
}

/**
 * A new connection must send the HTTP/2 client preface, which a client
 * sends at once, within this time, or it is closed.
 */
export const FIRST_BYTES_MS = 10_000;

/** What every HTTP/2 connection begins with (RFC 9113, section 3.4). */
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** A running gRPC server. */
export interface GrpcServer {
  /** The port actually bound (useful when 0 was asked for). */
  readonly port: number;
  /**
   * Health status, SERVING once started. Set NOT_SERVING to take Paygress
   * out of rotation (readiness) before stopping it.
   */
  readonly health: HealthService;
  /**
   * Marks health NOT_SERVING, stops accepting calls and waits for running
   * ones; after `graceMs` milliseconds the rest are cancelled.
   */
  close(graceMs: number): Promise<void>;
  /**
   * Resolves once no check is being decided or answered: a check cancelled
   * by `close` may still be redeeming a payment.
   */
  idle(): Promise<void>;
}

/**
 * What one client may hold of the listener. grpc-js sets none of these by
 * default: a client could open unlimited streams, each announcing a 4 MiB
 * message, and keep idle connections forever. What a connection's calls
 * have sent of their messages is held by grpc-js, which Node's session
 * memory limit does not count: 100 streams of 256 KiB held about 120 MB
 * (as grpc-js buffers them) on one connection, for as long as its age
 * and grace allow.
 */
export const LIMITS = {
  // A CheckRequest carries the original request's headers (Envoy allows
  // 60 KiB of them by default) and no body unless asked to send one,
  // which Paygress does not need.
  'grpc.max_receive_message_length': 256 * 1024,
  // Envoy opens another connection when one has this many checks open.
  'grpc.max_concurrent_streams': 100,
  // Megabytes of unanswered data per connection (Node's maxSessionMemory),
  // beyond which new streams are refused.
  'grpc-node.max_session_memory': 64,
  // Envoy reconnects on its next check.
  'grpc.max_connection_idle_ms': 5 * 60_000,
  // A connection is sent GOAWAY after 10 minutes (±10%) and Envoy opens
  // another; its calls still running get a minute. Without it, a client
  // that never ends a stream, or never reads its answers, keeps what its
  // streams hold for as long as it likes: the idle limit counts only
  // connections without streams.
  'grpc.max_connection_age_ms': 10 * 60_000,
  'grpc.max_connection_age_grace_ms': 60_000,
} as const satisfies grpc.ServerOptions;

/** Starts a grpc-js server with the ext_authz and health services. */
export async function startGrpcServer(
  options: GrpcServerOptions,
): Promise<GrpcServer> {
  // grpc-js writes its own errors to stderr as plain text; they belong in
  // the log with everything else (the setting is process-wide). Some quote
  // what a client sent (a header value it could not take), so no
  // credential in them is written.
  grpc.setLogger({
    error: (...args: unknown[]) =>
      options.logger.warn(
        { source: 'grpc-js' },
        redactSecrets(format(...args)),
      ),
  });
  // Channelz bookkeeping is about a tenth of a check's cost, but in
  // grpc-js 1.14 turning it off ('grpc.enable_channelz': 0) also stops the
  // server tracking its sessions, and forceShutdown then leaves stuck
  // calls running past the grace period. Shutdown wins.
  const server = new grpc.Server({
    ...LIMITS,
    ...(options.connectionAge && {
      'grpc.max_connection_age_ms': options.connectionAge.maxMs,
      'grpc.max_connection_age_grace_ms': options.connectionAge.graceMs,
    }),
  });
  const extAuthz = createExtAuthzService(options);
  const health = new HealthService({ services: [EXT_AUTHZ_SERVICE_NAME] });
  server.addService(extAuthz.definition, extAuthz.implementation);
  server.addService(health.definition, health.implementation);

  // Paygress owns the listening socket and hands grpc-js a connection
  // once it has sent the HTTP/2 preface: grpc-js itself neither bounds
  // how many connections it holds nor closes one that never speaks.
  const injector = server.createConnectionInjector(
    grpc.ServerCredentials.createInsecure(),
  );
  // Every connection, until it closes; those not yet handed over apart.
  const open = new Set<Socket>();
  const waiting = new Set<Socket>();
  let allClosed: (() => void) | undefined;
  const listener = createServer((socket) => {
    // A client may reset its connection at any time: an error without a
    // listener would take the process down. Once handed over, the HTTP/2
    // session has its own.
    socket.on('error', () => socket.destroy());
    open.add(socket);
    waiting.add(socket);
    socket.once('close', () => {
      open.delete(socket);
      waiting.delete(socket);
      if (open.size === 0) allClosed?.();
    });
    socket.setTimeout(FIRST_BYTES_MS, () => socket.destroy());
    afterPreface(socket, () => {
      waiting.delete(socket);
      socket.setTimeout(0);
      injector.injectConnection(socket);
    });
  });
  limitConnections(listener, {
    maxConnections: options.maxConnections ?? DEFAULT_MAX_CONNECTIONS,
    logger: options.logger,
    listener: 'grpc',
    setting: 'grpc.maxConnections, PAYGRESS_GRPC_MAX_CONNECTIONS',
    ...(options.connectionDropped && { dropped: options.connectionDropped }),
  });
  const port = await listen(
    listener,
    options.host,
    options.port,
    options.logger,
  );
  options.logger.info({ host: options.host, port }, 'grpc listening');

  return {
    port,
    health,
    close: async (graceMs) => {
      listener.close();
      for (const socket of waiting) socket.destroy();
      const closed = new Promise<void>((resolve) => {
        if (open.size === 0) resolve();
        else allClosed = resolve;
      });
      await shutdown(server, health, extAuthz, closed, open, graceMs);
    },
    idle: () => extAuthz.idle(),
  };
}

/**
 * Calls `then` once `socket` has sent the whole HTTP/2 preface, with what
 * it sent put back for Node's HTTP/2 session to read; destroys it at the
 * first byte that is not the preface's. Before the preface nothing of
 * grpc-js is involved, so a connection that trickles or stops is only a
 * socket, closed by its timeout.
 */
function afterPreface(socket: Socket, then: () => void): void {
  let got: Buffer = Buffer.alloc(0);
  const read = (chunk: Buffer) => {
    got = got.length === 0 ? chunk : Buffer.concat([got, chunk]);
    const compared = Math.min(got.length, PREFACE.length);
    if (!got.subarray(0, compared).equals(PREFACE.subarray(0, compared))) {
      socket.destroy();
      return;
    }
    if (got.length < PREFACE.length) return;
    socket.off('data', read);
    socket.pause();
    socket.unshift(got);
    then();
  };
  socket.on('data', read);
}

function listen(
  server: Server,
  host: string,
  port: number,
  logger: Logger,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const refused = (err: Error) => {
      reject(
        new Error(
          `gRPC cannot listen on ${hostPort(host, port)}: ${err.message}`,
          {
            cause: err,
          },
        ),
      );
    };
    server.once('error', refused);
    server.listen(port, host, () => {
      server.off('error', refused);
      server.on('error', (err) =>
        logger.error({ err }, 'the gRPC listener failed to accept'),
      );
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/**
 * Lets running calls finish, then closes; after `graceMs` cancels the
 * rest. grpc-js's own completion callback cannot say when that is: for
 * connections handed to it, it reports done while calls still run. A
 * connection closes once its session has, so `closed` is the measure.
 */
function shutdown(
  server: grpc.Server,
  health: HealthService,
  extAuthz: ExtAuthzService,
  closed: Promise<void>,
  open: ReadonlySet<Socket>,
  graceMs: number,
): Promise<void> {
  health.shutdown();
  // Answers to payments not yet through are owed, not lost.
  const force = setTimeout(() => {
    extAuthz.cutOff();
    server.forceShutdown();
    for (const socket of open) socket.destroy();
  }, graceMs);
  server.tryShutdown(() => {});
  return closed.finally(() => clearTimeout(force));
}
