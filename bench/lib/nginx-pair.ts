/**
 * nginx in front of an application, asking an auth service per request
 * through `auth_request`, from the shipped `deploy/nginx/nginx.conf` with
 * only its ports filled in. The bench starts two: one asking Paygress and
 * one asking the bare server, so nginx's own cost is in both.
 */
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import {
  renderTemplate,
  startNginx,
  type PeerProcess,
} from '../../test/support/nginx.ts';

const CONFIG = fileURLToPath(
  new URL('../../deploy/nginx/nginx.conf', import.meta.url),
);

/** A running nginx and the port it serves clients on. */
export interface Nginx {
  readonly port: number;
  stop(): Promise<void>;
}

/** Starts nginx asking `authPort` and proxying to `appPort`. */
export async function startAuthNginx(
  authPort: number,
  appPort: number,
): Promise<Nginx> {
  const port = await freePort();
  const config = renderTemplate(CONFIG, {
    LISTEN_PORT: port,
    PAYGRESS_PORT: authPort,
    UPSTREAM_PORT: appPort,
  });
  const peer: PeerProcess = await startNginx(config, [port]);
  return { port, stop: () => peer.stop() };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
