/**
 * The gRPC listener: Envoy's ext_authz service and the standard health
 * service on one grpc-js server.
 */
import { format } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { Decider } from '../core/model.ts';
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
}

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
 * message, and keep idle connections forever.
 */
export const LIMITS = {
  // A CheckRequest carries the original request's headers (Envoy allows
  // 60 KiB of them by default) and no body unless asked to send one,
  // which Paygress does not need.
  'grpc.max_receive_message_length': 1024 * 1024,
  'grpc.max_concurrent_streams': 1000,
  // Megabytes of unanswered data per connection (Node's maxSessionMemory),
  // beyond which new streams are refused.
  'grpc-node.max_session_memory': 64,
  // Envoy reconnects on its next check.
  'grpc.max_connection_idle_ms': 5 * 60_000,
} as const satisfies grpc.ServerOptions;

/** Starts a grpc-js server with the ext_authz and health services. */
export async function startGrpcServer(
  options: GrpcServerOptions,
): Promise<GrpcServer> {
  // grpc-js writes its own errors to stderr as plain text; they belong in
  // the log with everything else (the setting is process-wide).
  grpc.setLogger({
    error: (...args: unknown[]) =>
      options.logger.warn({ source: 'grpc-js' }, format(...args)),
  });
  // Channelz bookkeeping is about a tenth of a check's cost, but in
  // grpc-js 1.14 turning it off ('grpc.enable_channelz': 0) also stops the
  // server tracking its sessions, and forceShutdown then leaves stuck
  // calls running past the grace period. Shutdown wins.
  const server = new grpc.Server(LIMITS);
  const extAuthz = createExtAuthzService(options);
  const health = new HealthService({ services: [EXT_AUTHZ_SERVICE_NAME] });
  server.addService(extAuthz.definition, extAuthz.implementation);
  server.addService(health.definition, health.implementation);

  const port = await bind(server, listenAddress(options.host, options.port));
  options.logger.info({ host: options.host, port }, 'grpc listening');

  return {
    port,
    health,
    close: (graceMs) => shutdown(server, health, extAuthz, graceMs),
    idle: () => extAuthz.idle(),
  };
}

function listenAddress(host: string, port: number): string {
  // An IPv6 literal needs brackets before the port.
  const literal = host.includes(':') && !host.startsWith('[');
  return `${literal ? `[${host}]` : host}:${port}`;
}

function bind(server: grpc.Server, address: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(
      address,
      grpc.ServerCredentials.createInsecure(),
      (err, port) =>
        err
          ? reject(
              new Error(`gRPC cannot listen on ${address}: ${err.message}`),
            )
          : resolve(port),
    );
  });
}

function shutdown(
  server: grpc.Server,
  health: HealthService,
  extAuthz: ExtAuthzService,
  graceMs: number,
): Promise<void> {
  health.shutdown();

  return new Promise((resolve) => {
    // Answers to payments not yet through are owed, not lost.
    const force = setTimeout(() => {
      extAuthz.cutOff();
      server.forceShutdown();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(force);
      resolve();
    });
  });
}
