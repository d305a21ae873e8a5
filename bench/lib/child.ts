/**
 * The two ends of a bench server process: the child reports its ports over
 * IPC once listening, and the parent spawns it with the project's Node 24,
 * waits for that report, reads its resident memory and stops it.
 */
import * as grpc from '@grpc/grpc-js';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The Node binary every bench process runs on (the project's Node 24). */
export const NODE = fileURLToPath(
  new URL('../../node_modules/.bin/node', import.meta.url),
);

/**
 * Node options Paygress runs with, as the image's ENTRYPOINT and
 * `npm start` give them (bench/young-gen.ts measures why).
 */
export const PAYGRESS_NODE_ARGS: readonly string[] = [
  '--max-semi-space-size=8',
];

/** Ports a server child listens on, by name. */
export type Ports = Record<string, number | string>;

/** Called in a child once it listens: hands its ports to the parent. */
export function reportReady(ports: Ports): void {
  if (!process.send) throw new Error('run me from bench/run.ts (no IPC)');
  process.send({ ready: ports });
}

/**
 * Called in a gRPC server child: listens on an ephemeral loopback port,
 * reports it as `grpc`, and shuts down on SIGTERM.
 */
export function serveGrpc(server: grpc.Server): void {
  server.bindAsync(
    '127.0.0.1:0',
    grpc.ServerCredentials.createInsecure(),
    (err, port) => {
      if (err) throw err;
      reportReady({ grpc: port });
    },
  );
  process.once('SIGTERM', () => server.tryShutdown(() => process.exit(0)));
}

/** A running server child. */
export interface Child {
  readonly pid: number;
  readonly ports: Ports;
  /** Resident set size now, in bytes (from /proc). */
  rss(): number;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves on exit. */
  stop(graceMs?: number): Promise<void>;
}

/** Options of {@link startChild}. */
export interface StartChildOptions {
  /** Extra Node flags, e.g. `--cpu-prof`. Default none. */
  readonly nodeArgs?: readonly string[];
  /** Extra environment. Default none. */
  readonly env?: Record<string, string>;
  /** Time to wait for the ready report, in ms. Default 20000. */
  readonly timeoutMs?: number;
  /**
   * A cgroup directory (v1 memory or v2) the child joins before Node
   * starts, so it runs under that group's memory limit and Node sizes
   * its heap from the limit, as in a container. Default none.
   */
  readonly cgroup?: string;
}

/** Spawns `node <script> ...args` and resolves with its reported ports. */
export async function startChild(
  script: string,
  args: readonly string[] = [],
  options: StartChildOptions = {},
): Promise<Child> {
  const argv = [...(options.nodeArgs ?? []), script, ...args];
  // In a cgroup, a shell joins it and becomes Node (same pid, same IPC).
  const [command, commandArgs] =
    options.cgroup === undefined
      ? [NODE, argv]
      : [
          '/bin/sh',
          [
            '-c',
            'echo $$ > "$0/cgroup.procs" && exec "$@"',
            options.cgroup,
            NODE,
            ...argv,
          ],
        ];
  const child = spawn(command, commandArgs, {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    env: { ...process.env, ...options.env },
  });
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => resolve()),
  );
  const ports = await waitReady(child, options.timeoutMs ?? 20_000);
  const pid = child.pid!;

  return {
    pid,
    ports,
    rss: () => rssOf(pid),
    async stop(graceMs = 5000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

function waitReady(child: ChildProcess, timeoutMs: number): Promise<Ports> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('server child did not report ready in time'));
    }, timeoutMs);
    const early = (code: number | null) => {
      clearTimeout(timer);
      reject(new Error(`server child exited early (code ${code})`));
    };
    child.once('exit', early);
    child.on('message', (message: { ready?: Ports }) => {
      if (!message.ready) return;
      clearTimeout(timer);
      child.off('exit', early);
      resolve(message.ready);
    });
  });
}

/**
 * A cgroup's memory limit, the most it used and the processes its limit
 * killed, read from cgroup v2 files or else v1 ones.
 */
export function cgroupMemory(dir: string): {
  limitMB: number;
  peakMB: number;
  oomKills: number;
} {
  const read = (...names: string[]) => {
    for (const name of names) {
      try {
        return readFileSync(`${dir}/${name}`, 'utf8');
      } catch {
        // not this cgroup version's file
      }
    }
    return '';
  };
  const mb = (text: string) =>
    Math.round((Number(text.trim()) / 1048576) * 10) / 10;
  const events = read('memory.events', 'memory.oom_control');
  return {
    limitMB: mb(read('memory.max', 'memory.limit_in_bytes')),
    peakMB: mb(read('memory.peak', 'memory.max_usage_in_bytes')),
    oomKills: Number(/oom_kill (\d+)/.exec(events)?.[1] ?? 0),
  };
}

/** Resident set size of a process, in bytes. */
export function rssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = /VmRSS:\s+(\d+)\s+kB/.exec(status)?.[1];
  return kb === undefined ? 0 : Number(kb) * 1024;
}
