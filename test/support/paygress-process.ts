/**
 * Paygress as a real child process (`bin/paygress.ts serve`), for tests
 * that kill it with SIGKILL and start it again on the same data directory,
 * as a container runtime would. Each start takes fresh loopback ports and
 * resolves once `/readyz` answers 200, which is after start-up settled
 * every redemption the previous process left unfinished.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

/** Node 24 from the devDependency; the machine's own node is too old. */
export const NODE = fileURLToPath(
  new URL('../../node_modules/.bin/node', import.meta.url),
);

/** The `paygress` command. */
export const PAYGRESS_BIN = fileURLToPath(
  new URL('../../bin/paygress.ts', import.meta.url),
);

/** Options of {@link startPaygressProcess}. */
export interface PaygressProcessOptions {
  /** URL of the one mint Paygress accepts. */
  mintUrl: string;
  /** Data directory holding `wallet.sqlite`; reused across restarts. */
  dataDir: string;
  /** Per-request price, in sat. Default 100. */
  price?: number;
  /** Extra environment for Paygress. */
  env?: Record<string, string>;
  /** How long to wait for `/readyz`, in ms. Default 15000. */
  readyTimeoutMs?: number;
}

/** A Paygress child process that can be killed and started again. */
export interface PaygressProcess {
  /** `http://127.0.0.1:PORT` of the current process; changes per start. */
  readonly base: string;
  /** Whether a process is running. */
  readonly running: boolean;
  /** Starts a process (again) and resolves once it is ready. */
  start(): Promise<void>;
  /** Sends SIGKILL and resolves once the process is gone. */
  kill(): Promise<void>;
  /** Sends `signal` to the running process, and returns. */
  signal(signal: NodeJS.Signals): void;
  /** Sends SIGTERM (graceful shutdown) and resolves once it exited. */
  stop(): Promise<void>;
  /**
   * Resolves with the exit status once the process exits by itself;
   * rejects after `timeoutMs` (the process is then still running).
   */
  exited(timeoutMs: number): Promise<number | null>;
  /** The last lines Paygress wrote to stderr and stdout, for failures. */
  output(): string;
}

/** Keeps this many characters of the child's output. */
const OUTPUT_TAIL = 8000;

/** Creates a Paygress process handle and starts it. */
export async function startPaygressProcess(
  options: PaygressProcessOptions,
): Promise<PaygressProcess> {
  let child: ChildProcess | undefined;
  let base = '';
  let tail = '';

  const exited = (c: ChildProcess) =>
    c.exitCode !== null || c.signalCode !== null
      ? Promise.resolve()
      : new Promise<void>((resolve) => c.once('exit', () => resolve()));

  const handle: PaygressProcess = {
    get base() {
      return base;
    },
    get running() {
      return child !== undefined;
    },
    async start() {
      if (child) throw new Error('Paygress is already running');
      const [httpPort, grpcPort] = await freePorts(2);
      base = `http://127.0.0.1:${httpPort}`;
      child = spawn(NODE, [PAYGRESS_BIN, 'serve'], {
        env: {
          PATH: process.env.PATH ?? '',
          PAYGRESS_MINTS: options.mintUrl,
          PAYGRESS_HTTP_HOST: '127.0.0.1',
          PAYGRESS_HTTP_PORT: String(httpPort),
          PAYGRESS_GRPC_HOST: '127.0.0.1',
          PAYGRESS_GRPC_PORT: String(grpcPort),
          PAYGRESS_DATA_DIR: options.dataDir,
          DEFAULT_PAYMENT_AMOUNT: String(options.price ?? 100),
          PAYGRESS_LOG_LEVEL: 'warn',
          ...options.env,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const keep = (chunk: Buffer) => {
        tail = (tail + chunk.toString('utf8')).slice(-OUTPUT_TAIL);
      };
      child.stdout!.on('data', keep);
      child.stderr!.on('data', keep);

      const started = child;
      await waitReady(base, started, options.readyTimeoutMs ?? 15_000).catch(
        async (err: Error) => {
          started.kill('SIGKILL');
          await exited(started);
          child = undefined;
          throw new Error(`${err.message}\n${tail}`);
        },
      );
    },
    async kill() {
      const c = child;
      if (!c) return;
      child = undefined;
      c.kill('SIGKILL');
      await exited(c);
    },
    async stop() {
      const c = child;
      if (!c) return;
      child = undefined;
      c.kill('SIGTERM');
      const done = await Promise.race([
        exited(c).then(() => true),
        sleep(10_000).then(() => false),
      ]);
      if (!done) {
        c.kill('SIGKILL');
        await exited(c);
        throw new Error(`Paygress did not stop on SIGTERM\n${tail}`);
      }
    },
    signal(signal) {
      if (!child) throw new Error('Paygress is not running');
      child.kill(signal);
    },
    async exited(timeoutMs) {
      const c = child;
      if (!c) throw new Error('Paygress is not running');
      const done = await Promise.race([
        exited(c).then(() => true),
        sleep(timeoutMs).then(() => false),
      ]);
      if (!done) {
        throw new Error(`Paygress still runs after ${timeoutMs} ms\n${tail}`);
      }
      child = undefined;
      return c.exitCode;
    },
    output: () => tail,
  };

  await handle.start();
  return handle;
}

/**
 * Ports the kernel hands out for port 0, closed again for the child to
 * take. Another process could take one in between; on loopback in a test
 * run that is rare, and a start that fails says so.
 */
async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const server = createServer();
          server.once('error', reject);
          server.listen(0, '127.0.0.1', () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(
    servers.map(
      (s) => new Promise<void>((resolve) => s.close(() => resolve())),
    ),
  );
  return ports;
}

async function waitReady(
  base: string,
  child: ChildProcess,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `Paygress exited (${child.exitCode ?? child.signalCode})`,
      );
    }
    try {
      const res = await fetch(`${base}/readyz`, {
        signal: AbortSignal.timeout(1000),
      });
      await res.body?.cancel();
      if (res.status === 200) return;
    } catch {
      // Not listening yet.
    }
    await sleep(25);
  }
  throw new Error(`Paygress was not ready within ${timeoutMs} ms`);
}
