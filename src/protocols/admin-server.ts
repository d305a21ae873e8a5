/**
 * The operator's routes, `/healthz`, `/readyz` and `/metrics`: served on
 * the HTTP listener, and on an admin listener of their own when one is
 * configured, so that the auth listeners can stay on loopback while the
 * kubelet's probes and Prometheus reach the pod IP.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Reply } from './reply.ts';

/** What the operator's routes report. */
export interface AdminRoutes {
  /** True when the process can serve: config, store and mint keysets ready. */
  readonly ready?: () => boolean;
  /** Prometheus text for `/metrics`; absent disables the route. */
  readonly metrics?: () => Promise<{ contentType: string; body: string }>;
}

const TEXT = { 'Content-Type': 'text/plain; charset=utf-8' };

/** The answer to an operator's route; 404 for any other path. */
export async function adminReply(
  route: string,
  routes: AdminRoutes,
): Promise<Reply> {
  if (route === '/healthz') return { status: 200, headers: TEXT, body: 'ok\n' };
  if (route === '/readyz') {
    return (routes.ready?.() ?? true)
      ? { status: 200, headers: TEXT, body: 'ready\n' }
      : { status: 503, headers: TEXT, body: 'not ready\n' };
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
}

/** A running admin listener. */
export interface AdminServer {
  readonly port: number;
  /** Stops accepting and cuts the connections left. */
  close(): Promise<void>;
}

/** Starts a listener serving the operator's routes and nothing else. */
export async function startAdminServer(
  options: AdminServerOptions,
): Promise<AdminServer> {
  const { logger } = options;
  const server: Server = createServer({
    maxHeaderSize: 8192,
    requestTimeout: 10_000,
  });
  server.on('request', (req, res) => {
    const route = (req.url ?? '/').split('?')[0] ?? '/';
    adminReply(route, options)
      .catch((err: unknown): Reply => {
        logger.error({ err, route }, 'admin request failed');
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
  server.on('clientError', (_err, socket) => {
    if (socket.writable) {
      socket.end(
        'HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n',
      );
    }
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
