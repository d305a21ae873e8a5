/**
 * Runs the real nginx (Debian's nginx-light, /usr/sbin/nginx) on loopback
 * for conformance tests, from the very config files `deploy/` ships: only
 * `__NAME__` placeholders are filled in. Each instance lives in its own
 * temp prefix, runs in the foreground as one process, and is killed on
 * stop or, failing that, when the test process exits.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Path of the nginx binary. */
export const NGINX_BIN = '/usr/sbin/nginx';

/** A running peer process (nginx or Caddy). */
export interface PeerProcess {
  /** Temp directory holding its config and logs; removed on stop. */
  readonly dir: string;
  /** Text of its error log (or captured stderr) so far. */
  log(): string;
  /** Stops the process and waits for it to exit; safe to call twice. */
  stop(): Promise<void>;
}

/**
 * Reads a deploy template and fills each `__NAME__` placeholder from
 * `values` (keys without the underscores). Throws if one stays unfilled,
 * so a test never runs a config the user would not get.
 */
export function renderTemplate(
  path: string,
  values: Record<string, string | number>,
): string {
  let text = readFileSync(path, 'utf8');
  for (const [name, value] of Object.entries(values)) {
    text = text.replaceAll(`__${name}__`, String(value));
  }

  const left = /__[A-Z][A-Z0-9_]*__/.exec(text);
  if (left) throw new Error(`${path}: placeholder ${left[0]} not filled`);
  return text;
}

/**
 * Starts nginx with `config` as its whole configuration and resolves once
 * every port in `ports` accepts connections on 127.0.0.1.
 */
export async function startNginx(
  config: string,
  ports: readonly number[],
): Promise<PeerProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'paygress-nginx-'));
  const conf = join(dir, 'nginx.conf');
  const errorLog = join(dir, 'error.log');
  // The access log too, which nginx would otherwise append to its system
  // default (/var/log/nginx/access.log) on every test run.
  const withLog = config.replace(
    /^http\s*\{/m,
    (open) => `${open}\n    access_log ${join(dir, 'access.log')};`,
  );
  if (withLog === config) throw new Error('nginx config has no http block');
  writeFileSync(conf, withLog);

  // Foreground, one process, pid and early errors inside the temp prefix:
  // these are main-context settings, so the shipped file need not say them.
  const globals = `daemon off; master_process off; pid ${join(dir, 'nginx.pid')};`;
  const child = spawn(
    NGINX_BIN,
    ['-p', `${dir}/`, '-c', conf, '-e', errorLog, '-g', globals],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const stderr = captureStderr(child);
  const readLog = () => readOr(errorLog) + stderr();
  return startedPeer(child, dir, ports, readLog);
}

/**
 * Wraps a spawned peer: waits for its ports, and on failure to start kills
 * it and throws with its log. Shared by the nginx and Caddy helpers.
 */
export async function startedPeer(
  child: ChildProcess,
  dir: string,
  ports: readonly number[],
  log: () => string,
): Promise<PeerProcess> {
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const peer: PeerProcess = {
    dir,
    log,
    async stop() {
      process.off('exit', killOnExit);
      await stopChild(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };

  try {
    for (const port of ports) await waitForPort(port, child);
  } catch (err) {
    const text = log();
    await peer.stop();
    throw new Error(`${(err as Error).message}\n${text}`);
  }
  return peer;
}

async function waitForPort(port: number, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`peer exited before listening on ${port}`);
    }
    if (await canConnect(port)) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`peer did not listen on ${port} within 10 s`);
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => resolve()),
  );
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
}

/**
 * Starts collecting the child's stderr (spawned with a piped stderr) and
 * returns a reader for it; reading also keeps the pipe from filling up.
 */
export function captureStderr(child: ChildProcess): () => string {
  const chunks: string[] = [];
  child.stderr?.on('data', (chunk: Buffer) => chunks.push(chunk.toString()));
  return () => chunks.join('');
}

function readOr(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
