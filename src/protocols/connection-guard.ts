/**
 * Bounds on the TCP connections of a listener. Node closes a
 * connection that starts a request and does not finish its head in time
 * (`headersTimeout`), and one left idle between requests
 * (`keepAliveTimeout`), but keeps for good one that never sends a byte,
 * or one that never reads the answers it asked for, and accepts any
 * number of them: 9,000 silent connections to a listener held some 72 MB,
 * and nothing ever closed them.
 */
import type {
  Server as HttpServer,
  IncomingMessage,
  ServerResponse,
} from 'node:http';
import type { Server, Socket } from 'node:net';
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
   * A connection on which nothing is being decided and no byte moves for
   * this many ms is closed: one that sends no request, or does not read
   * its answers. A request being decided keeps it open however long.
   */
  readonly idleMs: number;
  /**
   * A connection with more than this many bytes of answers it has not
   * read is closed when it sends another request. Default
   * {@link MAX_UNSENT_BYTES}.
   */
  readonly maxUnsentBytes?: number;
}

/** Default of `http.maxConnections` and `grpc.maxConnections`. */
export const DEFAULT_MAX_CONNECTIONS = 1024;

/**
 * Answers a client has not read, beyond which its next request closes the
 * connection. A proxy reads each answer at once, and the kernel's send
 * buffer takes far more than this before Node holds a byte: a client
 * that asks without reading held some 155 KB of Paygress's memory per
 * connection.
 */
export const MAX_UNSENT_BYTES = 16 * 1024;

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
  let pending: NodeJS.Timeout | undefined;
  const log = () => {
    pending = undefined;
    // `dropped` counts since the last line; the metric counts them all.
    logger.warn(
      { listener, limit: maxConnections, dropped: unlogged },
      `connections closed on arrival: the ${listener} listener has ${maxConnections} open, its limit (${setting})`,
    );
    unlogged = 0;
    loggedAt = performance.now();
  };
  server.on('drop', () => {
    options.dropped?.();
    unlogged += 1;
    const wait = loggedAt + DROP_LOG_INTERVAL_MS - performance.now();
    if (wait <= 0) log();
    // The rest of a burst is counted in a line at the end of the minute.
    else pending ??= setTimeout(log, wait).unref();
  });
  server.once('close', () => {
    clearTimeout(pending);
    if (unlogged > 0) log();
  });
}

/** Whether a request is to be decided; see {@link guardConnections}. */
export type Admit = (req: IncomingMessage, res: ServerResponse) => boolean;

/**
 * {@link limitConnections} for an HTTP/1 listener, which also closes a
 * connection idle for `idleMs` with no request being decided (see
 * {@link GuardOptions.idleMs}) and answers what Node's parser refuses.
 * The listener's request handler calls the returned {@link Admit} first
 * and drops a request it refuses: one asked behind more than
 * `maxUnsentBytes` of answers not read, whose connection is closed.
 */
export function guardConnections(
  server: HttpServer,
  options: GuardOptions,
): Admit {
  limitConnections(server, options);
  const { idleMs, logger, maxUnsentBytes = MAX_UNSENT_BYTES } = options;
  // Answers of each connection not yet ended: while one is being decided,
  // silence is the decider's, not the client's.
  const answers = new WeakMap<Socket, ServerResponse[]>();
  const unended = (socket: Socket): ServerResponse[] => {
    let open = answers.get(socket);
    if (open === undefined) answers.set(socket, (open = []));
    for (let i = open.length - 1; i >= 0; i--) {
      if (open[i]!.writableEnded) open.splice(i, 1);
    }
    return open;
  };
  server.on('connection', (socket) => socket.setTimeout(idleMs));
  // With this listener Node leaves every timed-out socket to it, the
  // kept-alive ones included.
  server.on('timeout', (socket: Socket) => {
    if (unended(socket).length === 0) socket.destroy();
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    refuseClient(socket as Socket, err.code);
    logger.debug({ err: err.message }, 'client error');
  });

  return (req, res) => {
    const socket = req.socket;
    if (socket.destroyed) return false;
    if (socket.writableLength > maxUnsentBytes) {
      socket.destroy();
      return false;
    }
    // Node clears the timeout when a request arrives on a kept-alive
    // connection; it must still cover an answer that is never read.
    if (socket.timeout !== idleMs) socket.setTimeout(idleMs);
    unended(socket).push(res);
    return true;
  };
}

/** Statuses for what Node's parser refuses, as Node itself answers. */
const CLIENT_ERRORS: Readonly<Record<string, string>> = {
  HPE_HEADER_OVERFLOW: '431 Request Header Fields Too Large',
  ERR_HTTP_REQUEST_TIMEOUT: '408 Request Timeout',
};

/**
 * Answers a request Node's parser refused (`code`: the error's) with the
 * status Node would give it, and closes the connection a second later at
 * most, so a client that keeps trickling bytes and reads nothing does not
 * keep it.
 */
function refuseClient(socket: Socket, code: string | undefined): void {
  const status = CLIENT_ERRORS[code ?? ''] ?? '400 Bad Request';
  if (socket.writable) {
    socket.end(
      `HTTP/1.1 ${status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`,
    );
  }
  if (!socket.destroyed) setTimeout(() => socket.destroy(), 1000).unref();
}
