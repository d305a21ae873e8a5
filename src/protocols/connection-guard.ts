/**
 * Bounds on the TCP connections of a listener. Node closes a
 * connection that starts a request and does not finish its head in time
 * (`headersTimeout`), and one left idle between requests
 * (`keepAliveTimeout`), but keeps one that never sends a byte for good,
 * and accepts any number of them: 9,000 silent connections to a listener
 * held some 72 MB, and nothing ever closed them.
 */
import type { Server as HttpServer } from 'node:http';
import type { Server } from 'node:net';
import type { Logger } from 'pino';

/** Options of {@link limitConnections}. */
export interface LimitOptions {
  /**
   * Connections open at once. Past it a new connection is closed as soon
   * as it is accepted, before a byte of it is read.
   */
  readonly maxConnections: number;
  readonly logger: Logger;
  /** The listener, as log lines name it. */
  readonly listener: string;
  /** Where the limit comes from, for the log line. */
  readonly setting: string;
  /** Called for each connection closed for being over the limit. */
  readonly dropped?: () => void;
}

/** Options of {@link guardConnections}. */
export interface GuardOptions extends LimitOptions {
  /**
   * A new connection that sends no request head within this many ms is
   * closed. A client that starts one has `headersTimeout` to finish it.
   */
  readonly firstRequestMs: number;
}

/** Default of `http.maxConnections`. */
export const DEFAULT_MAX_CONNECTIONS = 4096;

/** Connections closed over the limit are logged at most this often. */
export const DROP_LOG_INTERVAL_MS = 60_000;

/**
 * Closes connections past `maxConnections` as they are accepted, counts
 * them, and logs them at most once a minute; call before `server` listens.
 */
export function limitConnections(server: Server, options: LimitOptions): void {
  const { logger, listener, setting, maxConnections } = options;
  server.maxConnections = maxConnections;

  let unlogged = 0;
  let loggedAt = -Infinity;
  server.on('drop', () => {
    options.dropped?.();
    unlogged += 1;
    const now = performance.now();
    if (now - loggedAt < DROP_LOG_INTERVAL_MS) return;
    // `dropped` counts since the last line; the metric counts them all.
    logger.warn(
      { listener, limit: maxConnections, dropped: unlogged },
      `connections closed on arrival: the ${listener} listener has ${maxConnections} open, its limit (${setting})`,
    );
    unlogged = 0;
    loggedAt = now;
  });
}

/**
 * {@link limitConnections}, and closes a connection of an HTTP/1 listener
 * that sends no request head within `firstRequestMs`.
 */
export function guardConnections(
  server: HttpServer,
  options: GuardOptions,
): void {
  limitConnections(server, options);
  // With no 'timeout' listener on the server, Node destroys a socket
  // whose timeout fires. The first request clears it; between requests
  // Node's own keep-alive timeout takes over.
  server.on('connection', (socket) =>
    socket.setTimeout(options.firstRequestMs),
  );
  server.prependListener('request', (req) => {
    if (req.socket.timeout) req.socket.setTimeout(0);
  });
}
