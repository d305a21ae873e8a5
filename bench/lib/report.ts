/**
 * Writes a run's results to `bench/results/<mode>.json` and a readable
 * `bench/results/<mode>.md` with the machine, the command, each number,
 * its ratio to the baseline and each target as met or not met.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { LoadResult } from './load.ts';
import type { ScenarioResult } from './scenario.ts';

const DIR = fileURLToPath(new URL('../results/', import.meta.url));

/** Whatever a run measured; sections are optional by mode. */
export interface Report {
  readonly machine: Record<string, string>;
  readonly command: string;
  readonly started: string;
  readonly [section: string]: unknown;
}

/** Writes both files and prints the Markdown to stdout. */
export function writeReport(mode: string, report: Report): void {
  mkdirSync(DIR, { recursive: true });
  writeFileSync(`${DIR}${mode}.json`, `${JSON.stringify(report, null, 2)}\n`);
  const md = markdown(mode, report);
  writeFileSync(`${DIR}${mode}.md`, md);
  process.stdout.write(md);
}

function markdown(mode: string, r: Report): string {
  const lines = [
    `# Paygress bench: ${mode} run`,
    '',
    `Command: \`${r.command}\`, started ${r.started}.`,
    '',
    ...Object.entries(r.machine).map(([k, v]) => `- ${k}: ${v}`),
    '',
  ];
  for (const [section, floor] of [
    ['http', 0.75],
    ['grpc', 0.7],
    ['nginx', undefined],
  ] as const) {
    const rows = r[section] as ScenarioResult[] | undefined;
    if (!rows) continue;
    lines.push(
      `## ${section}`,
      '',
      '| scenario | expect | req/s | ratio | p99 at max (ms) | rate at 60% | p50 / p99 at 60% (ms) | target |',
      '|---|---|---|---|---|---|---|---|',
    );
    for (const row of rows) lines.push(scenarioRow(row, floor));
    lines.push('');
  }
  const red = r.redemption as
    | {
        paygress: Summary;
        total: Summary;
        mintSwap: Summary;
        directCashuTs: Summary;
        mintCalls: object;
        allowed: number;
        redemptions: number;
        paygressCpuMs?: number;
      }
    | undefined;
  if (red) {
    lines.push(
      '## redemption (ms)',
      '',
      '| | p50 | p90 | p99 |',
      '|---|---|---|---|',
    );
    for (const [name, s] of [
      ['total request', red.total],
      ['mint /v1/swap (server side)', red.mintSwap],
      ['Paygress (total − swap)', red.paygress],
      ['same swap via cashu-ts', red.directCashuTs],
    ] as const) {
      lines.push(`| ${name} | ${s.p50} | ${s.p90} | ${s.p99} |`);
    }
    lines.push(
      '',
      `${red.allowed}/${red.redemptions} allowed; mint calls ${JSON.stringify(red.mintCalls)}; target Paygress p50 < 2 ms: ${met(red.paygress.p50 < 2)}`,
      '',
      ...(red.paygressCpuMs === undefined
        ? []
        : [
            `Paygress's CPU time per redemption (all threads, mean over the run): ${red.paygressCpuMs} ms`,
            '',
          ]),
    );
  }
  const mem = r.replayMemory as { addedRssMB: number } | undefined;
  if (mem)
    lines.push(
      `## replay cache`,
      '',
      `1,000,000 Ys add ${mem.addedRssMB} MB RSS (target < 150 MB: ${met(mem.addedRssMB < 150)}). ${JSON.stringify(mem)}`,
      '',
    );
  const soak = r.soak as
    | {
        seconds: number;
        answersAsExpected: boolean;
        mixed: LoadResult;
        grpc: LoadResult;
        redeemed: { allowed: number; refused: number };
        rss: {
          earlyMeanMB: number;
          lateMeanMB: number;
          maxMB: number;
          flat: boolean;
        };
      }
    | undefined;
  if (soak)
    lines.push(
      '## soak',
      '',
      `HTTP mix (wrk): ${soak.mixed.requests} requests, ${Math.round(soak.mixed.rps)} req/s, ${soak.mixed.errors} socket errors; answers ${JSON.stringify(soak.mixed.statuses)}: each kind answered as expected ${met(soak.answersAsExpected)}`,
      '',
      `gRPC no-token Checks (h2load): ${soak.grpc.requests} requests, ${Math.round(soak.grpc.rps)} req/s, ${soak.grpc.errors} errors`,
      '',
      `Redemptions: ${soak.redeemed.allowed} allowed, ${soak.redeemed.refused} refused`,
      '',
      `RSS mean ${soak.rss.earlyMeanMB} MB (first third after 1 min) → ${soak.rss.lateMeanMB} MB (last third), max ${soak.rss.maxMB} MB: flat ${met(soak.rss.flat)}`,
      '',
    );
  const cgroup = r.cgroup as
    | { dir: string; limitMB: number; peakMB: number; oomKills: number }
    | undefined;
  if (cgroup)
    lines.push(
      '## Paygress in a cgroup',
      '',
      `Memory limit ${cgroup.limitMB} MB; the group's peak use ${cgroup.peakMB} MB (resident memory and page cache); processes its limit killed: ${cgroup.oomKills}. (${cgroup.dir})`,
      '',
    );
  const profiles = r.profiles as
    Record<string, { frame: string; selfPercent: number }[]> | undefined;
  if (profiles) {
    lines.push('## top frames (self time, % of busy)', '');
    for (const [kind, frames] of Object.entries(profiles)) {
      lines.push(
        `- ${kind}: ${frames
          .slice(0, 6)
          .map((f) => `${f.frame} ${f.selfPercent}%`)
          .join('; ')}`,
      );
    }
    lines.push('');
  }
  return `${lines.join('\n')}\n`;
}

interface Summary {
  p50: number;
  p90: number;
  p99: number;
}

function scenarioRow(row: ScenarioResult, floor: number | undefined): string {
  const isBase = row.ratio === 1 || row.at60 === undefined;
  const p99 = row.at60?.p99Ms;
  const targets: string[] = [];
  // The throughput floor is the no-token refusal's and the grant's; a
  // replayed token has none (it decodes and hashes every proof).
  const floored = floor !== undefined && !row.name.startsWith('replay');
  if (!isBase && floored && row.ratio !== undefined) {
    targets.push(`ratio ≥ ${floor}: ${met(row.ratio >= floor)}`);
  }
  if (!isBase && p99 !== undefined) targets.push(`p99 < 5 ms: ${met(p99 < 5)}`);
  return `| ${row.name} | ${row.expect} | ${Math.round(row.max.rps)} | ${row.ratio ?? ''} | ${fmt(row.max.p99Ms)} | ${row.at60?.targetRps ?? ''} | ${fmt(row.at60?.p50Ms)} / ${fmt(p99)} | ${targets.join(', ')} |`;
}

function fmt(n: number | undefined): string {
  return n === undefined ? '' : n.toFixed(2);
}

function met(ok: boolean): string {
  return ok ? 'met' : 'NOT met';
}
