/**
 * Redemption of fresh tokens, one at a time, with the mint's share taken
 * out: the client times each paid request end to end, the timed dev mint
 * reports how long it spent serving each `/v1/swap` (server side), and
 * Paygress's own time is the difference, request by request. For a second
 * opinion the same number of equivalent swaps are done directly with
 * cashu-ts and timed from the client.
 */
import { Wallet } from '@cashu/cashu-ts';
import { mintToken } from '../../test/support/wallet.ts';
import { cpuMs } from './cpu.ts';
import { PRICED_PATH, forwardHeaders } from './fixtures.ts';
import { percentile } from './load.ts';

/** What {@link measureRedemption} found; times in ms. */
export interface RedemptionResult {
  readonly redemptions: number;
  readonly allowed: number;
  /** Client-side latency of a paid request. */
  readonly total: Summary;
  /** Server-side time of the mint's `/v1/swap`, per redemption. */
  readonly mintSwap: Summary;
  /** total − mint swap, request by request. */
  readonly paygress: Summary;
  /** Mint routes Paygress called during the run, with counts. */
  readonly mintCalls: Record<string, number>;
  /** The same swap done directly with cashu-ts `receive`, client-timed. */
  readonly directCashuTs: Summary;
  /**
   * CPU time of the Paygress process (all its threads) per redemption,
   * the mean over the run, when its pid was given: unlike total − swap,
   * it leaves out the loopback round trips and the mint's own HTTP work.
   */
  readonly paygressCpuMs?: number;
}

/** Median, p90 and p99 of a set of times, in ms. */
export interface Summary {
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
}

/** Mints `count` tokens, then redeems them through `/auth/forward`. */
export async function measureRedemption(
  base: string,
  mintUrl: string,
  statsPort: number,
  count: number,
  paygressPid?: number,
): Promise<RedemptionResult> {
  const tokens: string[] = [];
  for (let i = 0; i < 2 * count; i++)
    tokens.push(await mintToken(mintUrl, 100));
  const forPaygress = tokens.slice(0, count);
  const forDirect = tokens.slice(count);

  await fetch(`http://127.0.0.1:${statsPort}/reset`, { method: 'POST' });
  const cpuBefore = paygressPid === undefined ? 0 : cpuMs(paygressPid);
  const totals: number[] = [];
  let allowed = 0;
  for (const token of forPaygress) {
    const start = performance.now();
    const res = await fetch(`${base}/auth/forward`, {
      headers: [...forwardHeaders(PRICED_PATH), ['X-Cashu', token]].map(
        ([k, v]) => [k, v],
      ),
    });
    await res.arrayBuffer();
    totals.push(performance.now() - start);
    if (res.status === 200) allowed++;
  }
  const cpuPerRedemption =
    paygressPid === undefined
      ? undefined
      : (cpuMs(paygressPid) - cpuBefore) / count;
  const times = (await (
    await fetch(`http://127.0.0.1:${statsPort}/reset`, { method: 'POST' })
  ).json()) as Record<string, number[]>;
  const swaps = times['/v1/swap'] ?? [];
  if (swaps.length !== totals.length) {
    throw new Error(`${totals.length} redemptions but ${swaps.length} swaps`);
  }

  const direct = await directSwaps(mintUrl, forDirect);
  return {
    redemptions: count,
    allowed,
    total: summarise(totals),
    mintSwap: summarise(swaps),
    paygress: summarise(totals.map((t, i) => t - swaps[i]!)),
    mintCalls: Object.fromEntries(
      Object.entries(times).map(([route, list]) => [route, list.length]),
    ),
    directCashuTs: summarise(direct),
    ...(cpuPerRedemption !== undefined && {
      paygressCpuMs: Math.round(cpuPerRedemption * 100) / 100,
    }),
  };
}

async function directSwaps(
  mintUrl: string,
  tokens: string[],
): Promise<number[]> {
  const wallet = new Wallet(mintUrl, { unit: 'sat' });
  await wallet.loadMint();
  const out: number[] = [];
  for (const token of tokens) {
    const start = performance.now();
    await wallet.receive(token);
    out.push(performance.now() - start);
  }
  return out;
}

/** Percentiles of `values` in ms, rounded to µs. */
export function summarise(values: readonly number[]): Summary {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (p: number) => Math.round(percentile(sorted, p) * 1000) / 1000;
  return { p50: at(50), p90: at(90), p99: at(99) };
}
