/**
 * The HTTP listener: forward-auth, nginx auth_request, health and (when
 * no admin listener serves them) metrics on one port. It never reads a
 * request body (auth subrequests announce one they do not send) and
 * always answers with a `Content-Length`, so proxies keep their
 * connections alive.
 */
import {
  createServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from 'pino';
import type { AuthRequest, Decider, Decision, Deny } from '../core/model.ts';
import { createDecisionLog, type DecisionObserver } from './decision-log.ts';
import { forwardAuthReply, forwardAuthRequest } from './forward-auth.ts';
import { nginxAuthReply, nginxAuthRequest } from './nginx-auth.ts';
import { InFlight } from './in-flight.ts';
import {
  DEFAULT_MAX_CONNECTIONS,
  guardConnections,
} from './connection-guard.ts';
import {
  adminReply,
  sharingMetrics,
  type AdminRoutes,
} from './admin-server.ts';
import {
  deliversPayment,
  logError,
  renderOnce,
  reportUndelivered,
  type Reply,
} from './reply.ts';

/** Options of {@link startHttpServer}. */
export interface HttpServerOptions extends AdminRoutes {
  /** Address to bind. Default `0.0.0.0`. */
  readonly host?: string;
  /** Port; 0 picks a free one. Default 8080. */
  readonly port?: number;
  readonly decider: Decider;
  readonly logger: Logger;
  /** Called once per decision, for metrics. */
  readonly observe?: DecisionObserver;
  /**
   * The decision log, shared by every listener of the process. Default
   * one of this listener's own, with the default policy and limit.
   */
  readonly decisionLog?: DecisionObserver;
  /** Largest request header block accepted, in bytes. Default 32768. */
  readonly maxHeaderSize?: number;
  /**
   * Connections open at once; past it new ones are closed unread.
   * Default {@link DEFAULT_MAX_CONNECTIONS}.
   */
  readonly maxConnections?: number;
  /** Called for each connection closed for being over the limit. */
  readonly connectionDropped?: () => void;
}

/**
 * How long a request may take to arrive, and a connection with nothing
 * being decided may go without moving a byte.
 */
const REQUEST_TIMEOUT_MS = 30_000;

/** A running HTTP listener. */
export interface HttpServer {
  readonly port: number;
  /**
   * Stops accepting and lets in-flight requests finish; after `graceMs`
   * cuts the connections left.
   */
  close(graceMs: number): Promise<void>;
  /**
   * Resolves once no request is being decided or answered: a request cut
   * off by `close` may still be redeeming a payment.
   */
  idle(): Promise<void>;
}

interface Adapter {
  read(req: IncomingMessage): AuthRequest;
  reply(decision: Decision): Reply;
  /** Renderings of the decider's constant (frozen) decisions. */
  readonly constant: WeakMap<Decision, Rendered>;
  /** The answer when making one failed (a bug), in this protocol's shape. */
  readonly internal: Rendered;
}

/** A reply as written: headers as a flat name/value list, then the body. */
interface Rendered {
  readonly status: number;
  readonly head: readonly string[];
  readonly body: string;
  /** `latin1` when the body is ASCII, which Node encodes fastest. */
  readonly encoding: 'latin1' | 'utf8';
}

// The refusal when making an answer failed (a bug), rendered once by each
// protocol as any refusal that is our fault: a client handles it alike.
const INTERNAL: Deny = Object.freeze({
  kind: 'deny',
  reason: 'PAYGRESS_INTERNAL',
  message: 'internal error while answering; the operator has the details',
  fault: 'ours',
});

const FORWARD: Adapter = {
  read: forwardAuthRequest,
  reply: forwardAuthReply,
  constant: new WeakMap(),
  internal: render(forwardAuthReply(INTERNAL)),
};
const NGINX: Adapter = {
  read: nginxAuthRequest,
  reply: nginxAuthReply,
  constant: new WeakMap(),
  internal: render(nginxAuthReply(INTERNAL)),
};

export async function startHttpServer(
  options: HttpServerOptions,
): Promise<HttpServer> {
  const { decider, logger } = options;
  // Scrapes that arrive while one is rendered share it (see the admin
  // listener, which also reuses a rendering for a second).
  const routes = sharingMetrics(options, 0);
  const decisions = options.decisionLog ?? createDecisionLog(logger);
  const server: Server = createServer({
    maxHeaderSize: options.maxHeaderSize ?? 32768,
    keepAliveTimeout: 65_000,
    requestTimeout: REQUEST_TIMEOUT_MS,
  });
  const admit = guardConnections(server, {
    maxConnections: options.maxConnections ?? DEFAULT_MAX_CONNECTIONS,
    idleMs: REQUEST_TIMEOUT_MS,
    logger,
    listener: 'http',
    setting: 'http.maxConnections, PAYGRESS_HTTP_MAX_CONNECTIONS',
    ...(options.connectionDropped && { dropped: options.connectionDropped }),
  });

  // Once closing, every answer ends its connection, so keep-alive clients
  // do not hold the shutdown open until the grace period runs out.
  let closing = false;
  const running = new InFlight();
  const deciding: Deciding = {
    decider,
    decisions,
    logger,
    observe: options.observe,
    running,
  };
  const queued = new WeakMap<Socket, Queue>();
  server.on('request', (req, res) => {
    if (!admit(req, res)) return;
    // No socket yet: the answer waits behind an earlier one on the same
    // connection (pipelining, which no proxy does).
    if (res.socket === null && !admitQueued(queued, req, res)) return;
    const route = (req.url ?? '/').split('?')[0];
    // One path per protocol: which headers describe the original request
    // is never chosen by a header a client can send.
    const adapter =
      route === '/auth/forward'
        ? FORWARD
        : route === '/auth/nginx'
          ? NGINX
          : undefined;

    running.begin();
    // Nothing that fails while answering may take the process down: it is
    // our fault, and the proxy is told so (nginx and Traefik fail closed).
    // Callbacks, not an async function: fewer promises per request, so
    // none of them may throw, and each is called once (decideSafely).
    const answer = (reply: Rendered) => {
      try {
        write(req, res, reply, closing);
      } catch (err) {
        logError(logger, { err }, 'answer not written');
        res.destroy();
      } finally {
        running.end();
      }
    };
    const failed = (err: unknown) => {
      logError(logger, { err }, 'request failed');
      answer((adapter ?? FORWARD).internal);
    };
    if (adapter === undefined) {
      adminReply(route ?? '/', routes)
        .then(render)
        .then(answer, failed);
      return;
    }
    try {
      authorize(adapter, req, res, deciding, answer);
    } catch (err) {
      failed(err);
    }
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 8080, options.host ?? '0.0.0.0', resolve);
  });

  return {
    port: (server.address() as AddressInfo).port,
    close: (graceMs) => {
      closing = true;
      return closeGracefully(server, graceMs);
    },
    idle: () => running.idle(),
  };
}

/**
 * Answers a connection may have waiting behind the one being sent, and
 * the bytes of their requests. Node parses every request in what it has
 * read (a 64 KiB read holds some 900) before it stops reading, and keeps
 * each request until its answer is sent: a client that pipelined without
 * reading had 3.7 MB held per connection, and one pipelining requests of
 * 32 KiB of headers behind a slow one about 1 MB.
 */
export const MAX_QUEUED_ANSWERS = 32;
export const MAX_QUEUED_BYTES = 256 * 1024;

/** What one connection has waiting; see {@link MAX_QUEUED_ANSWERS}. */
interface Queue {
  answers: number;
  bytes: number;
}

/**
 * Whether a pipelined request is decided (one whose connection is closed
 * never gets here: the guard refused it). Past either limit the
 * connection is closed, with the answers it was waiting for, and the rest
 * of what it sent is never decided (no token of it is redeemed). No proxy
 * pipelines; a tool that pipelines deeper than this gets no answers.
 */
function admitQueued(
  queues: WeakMap<Socket, Queue>,
  req: IncomingMessage,
  res: ServerResponse,
): boolean {
  const socket = req.socket;
  let queue = queues.get(socket);
  if (queue === undefined) {
    queue = { answers: 0, bytes: 0 };
    queues.set(socket, queue);
  }
  let bytes = req.url?.length ?? 0;
  for (const field of req.rawHeaders) bytes += field.length;
  if (
    queue.answers >= MAX_QUEUED_ANSWERS ||
    queue.bytes + bytes > MAX_QUEUED_BYTES
  ) {
    socket.destroy();
    return false;
  }
  queue.answers += 1;
  queue.bytes += bytes;
  const waiting = queue;
  res.once('close', () => {
    waiting.answers -= 1;
    waiting.bytes -= bytes;
  });
  return true;
}

interface Deciding {
  decider: Decider;
  decisions: DecisionObserver;
  logger: Logger;
  observe: DecisionObserver | undefined;
  running: InFlight;
}

/**
 * Reads the request, has it decided and hands the rendering to `answer`,
 * exactly once. A reading that throws is the caller's to answer.
 */
function authorize(
  adapter: Adapter,
  req: IncomingMessage,
  res: ServerResponse,
  deciding: Deciding,
  answer: (reply: Rendered) => void,
): void {
  const started = performance.now();
  const request = adapter.read(req);
  const { decider, logger } = deciding;
  const conclude = (decision: Decision) => {
    let reply: Rendered;
    try {
      reply = settle(adapter, request, decision, started, res, deciding);
    } catch (err) {
      logError(logger, { err, reqId: request.requestId }, 'request failed');
      // What was paid for is not in this answer: it stays owed.
      if (deliversPayment(decision)) {
        reportUndelivered(decider, decision, logger, request.requestId);
      }
      reply = adapter.internal;
    }
    answer(reply);
  };
  decideSafely(decider, request).then(conclude, (err: unknown) => {
    // The gate turns every failure into a deny; reaching this is a bug, and
    // it must still fail closed.
    logError(logger, { err, reqId: request.requestId }, 'decider threw');
    conclude(DECIDER_THREW);
  });
}

const DECIDER_THREW: Decision = Object.freeze({
  kind: 'deny',
  reason: 'PAYGRESS_INTERNAL',
  message: 'internal error',
  fault: 'ours',
});

/**
 * The decider's answer as a promise of Node's own, which settles once: a
 * synchronous throw, a value or another thenable included.
 */
function decideSafely(
  decider: Decider,
  request: AuthRequest,
): Promise<Decision> {
  try {
    return Promise.resolve(decider.decide(request));
  } catch (err) {
    return Promise.reject(err);
  }
}

/**
 * Logs, counts and renders a decision, and watches the delivery of a
 * paid one once its answer is made: a throw before then leaves the
 * payment to the caller.
 */
function settle(
  adapter: Adapter,
  request: AuthRequest,
  decision: Decision,
  started: number,
  res: ServerResponse,
  { decider, decisions, logger, observe, running }: Deciding,
): Rendered {
  const duration = performance.now() - started;
  decisions(request, decision, duration);
  observe?.(request, decision, duration);
  const reply = renderOnce(adapter.constant, decision, (d) =>
    render(adapter.reply(d)),
  );
  if (deliversPayment(decision)) {
    // Shutdown waits for this too: whether the answer arrived is known
    // only when the connection has taken it or closed, and a loss learnt
    // after the store closed could no longer be recorded.
    running.track(
      watchDelivery(res, () =>
        reportUndelivered(decider, decision, logger, request.requestId),
      ),
    );
  }
  return reply;
}

/**
 * Calls `lost` if the answer cannot reach the caller: the connection is
 * already gone (the proxy gave up waiting, or shutdown cut it), or it
 * closes before the whole answer was handed to the socket. Settles once
 * that is known.
 */
function watchDelivery(res: ServerResponse, lost: () => void): Promise<void> {
  if (res.destroyed) {
    lost();
    return Promise.resolve();
  }
  return new Promise((resolve) =>
    res.once('close', () => {
      if (!res.writableFinished) lost();
      resolve();
    }),
  );
}

function render(reply: Reply): Rendered {
  const bytes = Buffer.byteLength(reply.body, 'utf8');
  const head: string[] = [];
  for (const [name, value] of Object.entries(reply.headers)) {
    head.push(name, value);
  }
  head.push('Content-Length', String(bytes));
  const encoding = bytes === reply.body.length ? 'latin1' : 'utf8';
  return { status: reply.status, head, body: reply.body, encoding };
}

// A flat header list goes out without the per-header bookkeeping of a
// header object: a bare server answered a quarter more refusals a second.
function write(
  req: IncomingMessage,
  res: ServerResponse,
  reply: Rendered,
  closing: boolean,
): void {
  // A request that announced a body we will not read must not share its
  // connection with the next one: the unread bytes would be parsed as it.
  const head =
    closing || announcesBody(req)
      ? [...reply.head, 'Connection', 'close']
      : reply.head;
  res.writeHead(reply.status, head as string[]);
  // A string body goes out with the head in one write; a Buffer took a
  // second one (writev), 10–20% more CPU per refusal
  // (bench/response-floor.ts).
  if (reply.body.length > 0) res.end(reply.body, reply.encoding);
  else res.end();
}

function announcesBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return (
    (length !== undefined && length !== '0') ||
    req.headers['transfer-encoding'] !== undefined
  );
}

async function closeGracefully(server: Server, graceMs: number): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  const timer = setTimeout(() => server.closeAllConnections(), graceMs);
  await closed;
  clearTimeout(timer);
}
