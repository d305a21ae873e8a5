/**
 * One load scenario and the side-by-side runner: the baseline runs before
 * and after the Paygress scenarios of its group, and each scenario's
 * throughput is reported as a ratio to the mean of those two runs.
 */
import { h2load, wrk, type HeaderList, type LoadResult } from './load.ts';

/** A closed-loop load: wrk for HTTP/1.1, h2load for gRPC. */
export interface Scenario {
  readonly name: string;
  readonly tool: 'wrk' | 'h2load';
  readonly url: string;
  readonly headers?: HeaderList;
  /** Framed gRPC request body, for h2load. */
  readonly dataFile?: string;
  /** What one request is expected to get, for the record. */
  readonly expect: string;
}

/** A scenario's closed-loop and fixed-rate results. */
export interface ScenarioResult {
  readonly name: string;
  readonly expect: string;
  readonly max: LoadResult;
  /** Throughput over the group's baseline mean. */
  readonly ratio?: number;
  /** Latency at 60% of this scenario's own maximum rate. */
  readonly at60?: LoadResult & { readonly targetRps: number };
}

/** gRPC-over-h2load header set. */
export const GRPC_HEADERS: HeaderList = [
  ['content-type', 'application/grpc'],
  ['te', 'trailers'],
];

/** Runs one scenario flat out for `seconds`. */
export function runMax(s: Scenario, seconds: number): Promise<LoadResult> {
  if (s.tool === 'wrk') {
    return wrk({ url: s.url, headers: s.headers ?? [], seconds });
  }
  return h2load({
    url: s.url,
    headers: [...GRPC_HEADERS, ...(s.headers ?? [])],
    ...(s.dataFile ? { dataFile: s.dataFile } : {}),
    seconds,
  });
}

/** Runs one scenario at a fixed rate with h2load and reads p50/p99. */
export async function runFixed(
  s: Scenario,
  rate: number,
  seconds: number,
): Promise<LoadResult & { targetRps: number }> {
  const http1 = s.tool === 'wrk';
  const result = await h2load({
    url: s.url,
    headers: http1
      ? (s.headers ?? [])
      : [...GRPC_HEADERS, ...(s.headers ?? [])],
    ...(s.dataFile ? { dataFile: s.dataFile } : {}),
    seconds,
    h1: http1,
    clients: 16,
    streams: 1,
    rate,
  });
  return { ...result, targetRps: Math.round(rate) };
}

/**
 * Baseline, each scenario, baseline again; then each at 60% of its own
 * maximum. Logs progress to stderr.
 */
export async function runGroup(
  baseline: Scenario,
  scenarios: readonly Scenario[],
  seconds: number,
): Promise<ScenarioResult[]> {
  const first = await step(baseline, seconds);
  const maxima: LoadResult[] = [];
  for (const s of scenarios) maxima.push(await step(s, seconds));
  const last = await step(baseline, seconds);
  const base = (first.rps + last.rps) / 2;

  const all = [baseline, ...scenarios];
  const maxOf = [{ ...first, rps: base }, ...maxima];
  const out: ScenarioResult[] = [];
  for (const [i, s] of all.entries()) {
    const max = i === 0 ? first : maxima[i - 1]!;
    const at60 = await runFixed(s, 0.6 * maxOf[i]!.rps, seconds);
    progress(`${s.name} at 60%: p99 ${at60.p99Ms?.toFixed(2)} ms`);
    out.push({
      name: s.name,
      expect: s.expect,
      max: i === 0 ? { ...max, rps: Math.round(base) } : max,
      ratio: round3(maxOf[i]!.rps / base),
      at60,
    });
  }
  return [
    ...out,
    {
      name: `${baseline.name} (second run)`,
      expect: baseline.expect,
      max: last,
    },
  ];
}

async function step(s: Scenario, seconds: number): Promise<LoadResult> {
  const result = await runMax(s, seconds);
  progress(`${s.name}: ${Math.round(result.rps)} req/s`);
  return result;
}

/** A progress line on stderr. */
export function progress(line: string): void {
  process.stderr.write(`bench: ${line}\n`);
}

/** Rounds to three decimals. */
export function round3(n: number): number {
  return Math.round(n * 1000) / 1000;
}
