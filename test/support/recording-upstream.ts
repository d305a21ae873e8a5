/**
 * Loopback servers that stand where a proxy's neighbours stand and record
 * what reaches them: an application upstream that keeps every request it
 * served, and a TCP relay that counts the connections a proxy opens to
 * Paygress (to show that the proxy reuses them).
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import {
  connect,
  createServer as createTcpServer,
  type Server as TcpServer,
  type Socket,
} from 'node:net';
import type { AddressInfo } from 'node:net';

/** One request as the upstream received it. */
export interface RecordedRequest {
  /** Request method, e.g. `POST`. */
  readonly method: string;
  /** Request target as sent, path and query. */
  readonly url: string;
  /** Headers with lower-cased names, as Node parsed them. */
  readonly headers: IncomingHttpHeaders;
  /** Number of body bytes received. */
  readonly bodyBytes: number;
}

/** A running recording upstream. */
export interface RecordingUpstream {
  /** Loopback port it listens on. */
  readonly port: number;
  /** Every request served so far, oldest first. */
  readonly requests: RecordedRequest[];
  /** The most recent request, if any. */
  last(): RecordedRequest | undefined;
  close(): Promise<void>;
}

/** Body every upstream answer carries, so a test can tell it reached us. */
export const UPSTREAM_BODY = 'upstream reached\n';

/**
 * Starts an HTTP server on 127.0.0.1 (ephemeral port) that reads each
 * request body to the end, records the request and answers 200.
 */
export async function startRecordingUpstream(): Promise<RecordingUpstream> {
  const requests: RecordedRequest[] = [];
  const server: Server = createServer((req, res) => {
    let bodyBytes = 0;
    req.on('data', (chunk: Buffer) => (bodyBytes += chunk.length));
    req.on('end', () => {
      requests.push({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        bodyBytes,
      });
      res.writeHead(200, {
        'Content-Type': 'text/plain',
        'Content-Length': Buffer.byteLength(UPSTREAM_BODY),
      });
      res.end(UPSTREAM_BODY);
    });
  });
  await listen(server);

  return {
    port: (server.address() as AddressInfo).port,
    requests,
    last: () => requests.at(-1),
    close: () => closeServer(server),
  };
}

/** A running counting relay. */
export interface CountingRelay {
  /** Loopback port a proxy should connect to instead of the target. */
  readonly port: number;
  /** Connections accepted so far. */
  connections(): number;
  /**
   * Every byte proxies sent towards the target so far, as latin1 text, to
   * show what the target was told. Holds tokens: never log it.
   */
  received(): string;
  close(): Promise<void>;
}

/**
 * Starts a TCP relay on 127.0.0.1 that pipes every connection to
 * `127.0.0.1:targetPort`, counting the connections it accepted and keeping
 * what they sent.
 */
export async function startCountingRelay(
  targetPort: number,
): Promise<CountingRelay> {
  let count = 0;
  const inboundText: string[] = [];
  const sockets = new Set<Socket>();
  const server: TcpServer = createTcpServer((inbound) => {
    count++;
    const outbound = connect(targetPort, '127.0.0.1');
    for (const socket of [inbound, outbound]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {
        inbound.destroy();
        outbound.destroy();
      });
    }
    inbound.on('data', (chunk: Buffer) =>
      inboundText.push(chunk.toString('latin1')),
    );
    inbound.pipe(outbound).pipe(inbound);
  });
  await listen(server);

  return {
    port: (server.address() as AddressInfo).port,
    connections: () => count,
    received: () => inboundText.join(''),
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A free loopback port, found by binding port 0 and letting it go. */
export async function freePort(): Promise<number> {
  const server = createTcpServer();
  await listen(server);
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function listen(server: Server | TcpServer): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
}

async function closeServer(server: Server): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  await closed;
}
