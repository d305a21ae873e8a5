/**
 * CPU time of a server process and a fixed number of gRPC unary calls to
 * it: the two halves of a CPU-per-call measurement.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** User + system CPU of a process so far, in ms (/proc, 100 Hz ticks). */
export function cpuMs(pid: number): number {
  const { user, system } = cpuSplitMs(pid);
  return user + system;
}

/**
 * User and system CPU of a process so far, in ms. User time is the
 * process's own code; system time is mostly the kernel's sending and
 * waking the client, which moves with the machine more than with it.
 */
export function cpuSplitMs(pid: number): { user: number; system: number } {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8')
    .split(') ')[1]!
    .split(' ');
  return { user: Number(fields[11]) * 10, system: Number(fields[12]) * 10 };
}

/**
 * Sends `calls` unary gRPC calls with h2load (16 clients × 8 streams) and
 * fails unless every one got an HTTP 200.
 */
export async function h2loadCalls(
  url: string,
  body: string,
  calls: number,
): Promise<void> {
  const args = [
    ...['-n', String(calls), '-c', '16', '-m', '8', '-d', body],
    ...['-H', 'content-type: application/grpc', '-H', 'te: trailers', url],
  ];
  const out = await new Promise<string>((resolve, reject) =>
    execFile('h2load', args, { timeout: 120_000 }, (err, stdout) =>
      err ? reject(err) : resolve(stdout),
    ),
  );
  if (!new RegExp(`\\b${calls} succeeded`).test(out)) {
    throw new Error(`not every call succeeded:\n${out}`);
  }
}
