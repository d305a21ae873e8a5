/**
 * The load generators, each a separate process: Debian's `wrk` for
 * closed-loop HTTP/1.1 throughput, and `h2load` for gRPC throughput and
 * for fixed-rate latency runs (`--rps`, per-request log). Their text
 * output is parsed into one shape.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** What one load run measured. */
export interface LoadResult {
  /** Completed requests per second over the run. */
  readonly rps: number;
  /** Requests completed. */
  readonly requests: number;
  /** Connection-level errors (connect, read, write, timeout, reset). */
  readonly errors: number;
  /** Latency percentiles in ms, when the tool reports them. */
  readonly p50Ms?: number;
  readonly p99Ms?: number;
  /** Responses by HTTP status class, when the tool reports them. */
  readonly statuses?: Record<string, number>;
}

/**
 * Prefix of the lines a wrk script's `done` may print, one per answer kind:
 * `TAG <status>[ <reason>]\t<count>`. When present they replace wrk's own
 * coarse "Non-2xx or 3xx" count in {@link LoadResult.statuses}.
 */
export const WRK_STATUS_TAG = 'bench-status';

/** Headers as `name: value` pairs. */
export type HeaderList = readonly (readonly [string, string])[];

/** Options of {@link wrk}. */
export interface WrkOptions {
  readonly url: string;
  readonly headers?: HeaderList;
  /** Length of the run, in s. */
  readonly seconds: number;
  /** Open connections. Default 64. */
  readonly connections?: number;
  /** Load threads. Default 1 (the other core is the server's). */
  readonly threads?: number;
  /** A wrk Lua script file. Default none. */
  readonly script?: string;
}

/** Runs wrk and parses its summary. */
export async function wrk(o: WrkOptions): Promise<LoadResult> {
  const args = [
    `-t${o.threads ?? 1}`,
    `-c${o.connections ?? 64}`,
    `-d${o.seconds}s`,
    '--latency',
    ...(o.script ? ['-s', o.script] : []),
    ...headerArgs(o.headers),
    o.url,
  ];
  const out = await run('wrk', args, o.seconds);
  const rps = num(/Requests\/sec:\s+([\d.]+)/, out);
  const requests = num(/(\d+) requests in/, out);
  const socket =
    /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(
      out,
    );
  const errors = socket
    ? socket.slice(1).reduce((a, b) => a + Number(b), 0)
    : 0;
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  const tagged: Record<string, number> = {};
  for (const m of out.matchAll(
    new RegExp(`^${WRK_STATUS_TAG} ([^\\t]+)\\t(\\d+)$`, 'gm'),
  ))
    tagged[m[1]!] = Number(m[2]);
  const statuses =
    Object.keys(tagged).length > 0
      ? tagged
      : non2xx
        ? { other: Number(non2xx[1]) }
        : { '2xx/3xx': requests };
  return {
    rps,
    requests,
    errors,
    p50Ms: wrkLatency('50%', out),
    p99Ms: wrkLatency('99%', out),
    statuses,
  };
}

/** Options of {@link h2load}. */
export interface H2loadOptions {
  readonly url: string;
  readonly headers?: HeaderList;
  /** File whose bytes are each request's body (a framed gRPC message). */
  readonly dataFile?: string;
  readonly seconds: number;
  /** Clients (connections). Default 16. */
  readonly clients?: number;
  /** Concurrent streams per client. Default 8 (1 for HTTP/1.1). */
  readonly streams?: number;
  /** Force HTTP/1.1. Default false. */
  readonly h1?: boolean;
  /** Fixed total rate in requests per second, spread over the clients. */
  readonly rate?: number;
}

/** Runs h2load; at a fixed rate, percentiles come from its request log. */
export async function h2load(o: H2loadOptions): Promise<LoadResult> {
  const clients = o.clients ?? 16;
  const dir = mkdtempSync(join(tmpdir(), 'paygress-h2load-'));
  const log = join(dir, 'requests.tsv');
  const args = [
    `-c${clients}`,
    `-m${o.streams ?? (o.h1 ? 1 : 8)}`,
    '-t1',
    `-D${o.seconds}`,
    ...(o.h1 ? ['--h1'] : []),
    ...(o.dataFile ? ['-d', o.dataFile] : []),
    ...(o.rate
      ? [
          `--rps=${Math.max(1, Math.round(o.rate / clients))}`,
          `--log-file=${log}`,
        ]
      : []),
    ...headerArgs(o.headers),
    o.url,
  ];
  try {
    const out = await run('h2load', args, o.seconds);
    const done = num(/requests: \d+ total, \d+ started, (\d+) done/, out);
    const failed = /(\d+) failed, (\d+) errored, (\d+) timeout/.exec(out);
    const status =
      /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out);
    const result: LoadResult = {
      rps: num(/finished in [\d.]+\w+, ([\d.]+) req\/s/, out),
      requests: done,
      errors: failed ? Number(failed[2]) + Number(failed[3]) : 0,
      ...(status
        ? {
            statuses: {
              '2xx': Number(status[1]),
              '3xx': Number(status[2]),
              '4xx': Number(status[3]),
              '5xx': Number(status[4]),
            },
          }
        : {}),
    };
    return o.rate ? { ...result, ...percentilesFromLog(log) } : result;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The p-th percentile (0–100) of sorted numbers, nearest rank. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length) - 1;
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))]!;
}

function percentilesFromLog(file: string) {
  const micros = readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => Number(line.split('\t')[2]))
    .sort((a, b) => a - b);
  return {
    p50Ms: percentile(micros, 50) / 1000,
    p99Ms: percentile(micros, 99) / 1000,
  };
}

function headerArgs(headers: HeaderList = []): string[] {
  return headers.flatMap(([k, v]) => ['-H', `${k}: ${v}`]);
}

function wrkLatency(label: string, out: string): number | undefined {
  const m = new RegExp(`^\\s+${label}\\s+([\\d.]+)(us|ms|s)\\s*$`, 'm').exec(
    out,
  );
  if (!m) return undefined;
  const scale = m[2] === 'us' ? 0.001 : m[2] === 's' ? 1000 : 1;
  return Number(m[1]) * scale;
}

function num(pattern: RegExp, out: string): number {
  const m = pattern.exec(out);
  if (!m) throw new Error(`unexpected load tool output:\n${out}`);
  return Number(m[1]);
}

function run(cmd: string, args: string[], seconds: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      { timeout: (seconds + 30) * 1000, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        // The message would hold the command line, and with it credentials.
        if (err)
          reject(new Error(`${cmd} failed (exit ${err.code}): ${stderr}`));
        else resolve(stdout);
      },
    );
  });
}
