/**
 * The operator's routes, `/healthz`, `/readyz` and `/metrics`: served on
 * the HTTP listener, and on an admin listener of their own when one is
 * configured, so that the auth listeners can stay on loopback while the
 * kubelet's probes and Prometheus reach the pod IP.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { guardConnections } from './connection-guard.ts';
import { logError, type Reply } from './reply.ts';

/** What the operator's routes report. */
export interface AdminRoutes {
  /** True when the process can serve: config, store and mint keysets ready. */
  readonly ready?: () => boolean;
  /** Why the process is not ready, for `/readyz`'s body; with `ready`. */
  readonly unready?: () => string | undefined;
  /**
   * False when only a restart can mend the process (`/healthz` answers
   * 503, and the kubelet's liveness probe restarts the container).
   */
  readonly alive?: () => boolean;
  /** Prometheus text for `/metrics`; absent disables the route. */
  readonly metrics?: () => Promise<{ contentType: string; body: string }>;
}

const TEXT = { 'Content-Type': 'text/plain; charset=utf-8' };

/** Renderings of the metrics on the admin listener are reused this long. */
export const ADMIN_METRICS_MAX_AGE_MS = 1000;

/**
 * `render`, shared: calls while one rendering runs get that rendering,
 * and so do calls up to `maxAgeMs` after it began. A rendering that
 * failed is not reused. Rendering walks every metric and the store; a
 * client asking for it again and again, or many at once, would otherwise
 * take the event loop from the requests Paygress is there to answer.
 */
function sharedRendering<T>(
  render: () => Promise<T>,
  maxAgeMs: number,
): () => Promise<T> {
  let last: { at: number; done: boolean; result: Promise<T> } | undefined;
  return () => {
    const now = performance.now();
    if (last === undefined || (last.done && now - last.at >= maxAgeMs)) {
      const current = { at: now, done: false, result: render() };
      last = current;
      current.result.then(
        () => (current.done = true),
        () => {
          if (last === current) last = undefined;
        },
      );
    }
    return last.result;
  };
}

/** The routes, their metrics rendering shared (see sharedRendering). */
export function sharingMetrics(
  { ready, unready, alive, metrics }: AdminRoutes,
  maxAgeMs: number,
): AdminRoutes {
  return {
    ...(ready && { ready }),
    ...(unready && { unready }),
    ...(alive && { alive }),
    ...(metrics && { metrics: sharedRendering(metrics, maxAgeMs) }),
  };
}

/** The answer to an operator's route; 404 for any other path. */
export async function adminReply(
  route: string,
  routes: AdminRoutes,
): Promise<Reply> {
  if (route === '/healthz') {
    return (routes.alive?.() ?? true)
      ? { status: 200, headers: TEXT, body: 'ok\n' }
      : { status: 503, headers: TEXT, body: 'restart needed\n' };
  }
  if (route === '/readyz') {
    return (routes.ready?.() ?? true)
      ? { status: 200, headers: TEXT, body: 'ready\n' }
      : {
          status: 503,
          headers: TEXT,
          body: `not ready: ${routes.unready?.() ?? 'starting'}\n`,
        };
  }
  if (route === '/metrics' && routes.metrics) {
    const { contentType, body } = await routes.metrics();
    return { status: 200, headers: { 'Content-Type': contentType }, body };
  }
  return { status: 404, headers: TEXT, body: 'not found\n' };
}

/** Options of {@link startAdminServer}. */
export interface AdminServerOptions extends AdminRoutes {
  readonly host: string;
  /** Port; 0 picks a free one. */
  readonly port: number;
  readonly logger: Logger;
  /** Called for each connection closed for being over the limit. */
  readonly connectionDropped?: () => void;
}

/**
 * Connections the admin listener holds at once, and how long one may go
 * without moving a byte. Probes and scrapers open a few and ask at once; the
 * limit keeps whatever else reaches the pod network from holding memory
 * the payment path needs (some 8 KB a connection).
 */
export const ADMIN_CONNECTIONS = {
  maxConnections: 1024,
  idleMs: 10_000,
} as const;

/** A running admin listener. */
export interface AdminServer {
  readonly port: number;
  /** Stops accepting and cuts the connections left. */
  close(): Promise<void>;
}

/**
 * Starts a listener serving the operator's routes and nothing else. It
 * faces the pod network, so it holds to what probes and scrapers do: one
 * request at a time per connection (a pipelined request closes the
 * connection), and `/metrics` rendered at most once a second.
 */
export async function startAdminServer(
  options: AdminServerOptions,
): Promise<AdminServer> {
  const { logger } = options;
  const routes = sharingMetrics(options, ADMIN_METRICS_MAX_AGE_MS);
  const server: Server = createServer({
    maxHeaderSize: 8192,
    requestTimeout: ADMIN_CONNECTIONS.idleMs,
  });
  const admit = guardConnections(server, {
    ...ADMIN_CONNECTIONS,
    logger,
    listener: 'admin',
    setting: 'fixed',
    ...(options.connectionDropped && { dropped: options.connectionDropped }),
  });
  server.on('request', (req, res) => {
    if (!admit(req, res)) return;
    // No socket yet: it was pipelined behind a request not yet answered.
    // No probe or scraper does that; a client that does could start
    // thousands of renderings with one write.
    if (res.socket === null) {
      req.socket.destroy();
      return;
    }
    const route = (req.url ?? '/').split('?')[0] ?? '/';
    adminReply(route, routes)
      .catch((err: unknown): Reply => {
        logError(logger, { err, route }, 'admin request failed');
        return { status: 503, headers: TEXT, body: 'internal error\n' };
      })
      .then(({ status, headers, body }) => {
        res.writeHead(status, {
          ...headers,
          'Content-Length': Buffer.byteLength(body),
        });
        res.end(body);
      });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, resolve);
  });

  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
