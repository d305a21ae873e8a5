/**
 * Paygress against the bare limit, in one run: starts a timed dev mint,
 * the bare HTTP and gRPC baselines and Paygress on loopback ephemeral
 * ports, loads each scenario beside its baseline from separate load
 * processes, measures redemption, replay-cache memory and CPU profiles,
 * writes `bench/results/<mode>.json` and `.md`, and stops everything.
 *
 *   node_modules/.bin/node bench/run.ts            about 10 s per load (default)
 *   node_modules/.bin/node bench/run.ts --quick    3 s per load, a 1–2 minute run
 *   node_modules/.bin/node bench/run.ts --soak     10-minute mixed soak, RSS sampled
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  NODE,
  PAYGRESS_NODE_ARGS,
  cgroupMemory,
  startChild,
  type Child,
} from './lib/child.ts';
import {
  CHECK_PATH,
  METERED_PATH,
  PRICED_PATH,
  buyGrant,
  checkFile,
  spentToken,
  forwardHeaders,
  nginxHeaders,
} from './lib/fixtures.ts';
import { describeMachine } from './lib/machine.ts';
import { startAuthNginx } from './lib/nginx-pair.ts';
import { topFrames } from './lib/profile.ts';
import { measureRedemption } from './lib/redemption.ts';
import { writeReport } from './lib/report.ts';
import { progress, runGroup, runMax, type Scenario } from './lib/scenario.ts';
import { checkExpectations } from './lib/probes.ts';
import { runSoak } from './lib/soak.ts';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    soak: { type: 'boolean', default: false },
    seconds: { type: 'string' },
    'soak-seconds': { type: 'string', default: '600' },
    'no-profile': { type: 'boolean', default: false },
  },
});
// BENCH_LOG_DECISIONS=all gives every decision its log line; its results
// are kept apart from those of the default policy.
const logAll = process.env.BENCH_LOG_DECISIONS === 'all';
// BENCH_PAYGRESS_CGROUP: a cgroup directory Paygress runs in (the others
// do not), e.g. one limited to the manifests' 512 MiB; results apart too.
const cgroup = process.env.BENCH_PAYGRESS_CGROUP || undefined;
const mode =
  (values.soak ? 'soak' : values.quick ? 'quick' : 'default') +
  (logAll ? '-log-all' : '') +
  (cgroup !== undefined ? '-cgroup' : '');
const seconds = Number(values.seconds ?? (values.quick ? 3 : 10));
const here = (file: string) => new URL(file, import.meta.url).pathname;

const started = new Date().toISOString();
const command = `${logAll ? 'BENCH_LOG_DECISIONS=all ' : ''}${cgroup ? `BENCH_PAYGRESS_CGROUP=${cgroup} ` : ''}bench/run.sh${process.argv
  .slice(2)
  .map((a) => ` ${a}`)
  .join('')}`;
const dir = mkdtempSync(join(tmpdir(), 'paygress-bench-run-'));
const children: Child[] = [];
const stoppers: (() => Promise<void>)[] = [];
const child = async (
  script: string,
  args: string[] = [],
  nodeArgs: string[] = [],
  inCgroup?: string,
) => {
  const c = await startChild(here(script), args, {
    nodeArgs,
    ...(inCgroup !== undefined && { cgroup: inCgroup }),
  });
  children.push(c);
  return c;
};

try {
  const mint = await child('servers/timed-mint.ts');
  const mintUrl = String(mint.ports.url);
  const paygress = await child(
    'servers/paygress.ts',
    ['--mint', mintUrl],
    [...PAYGRESS_NODE_ARGS],
    cgroup,
  );
  const pg = `http://127.0.0.1:${paygress.ports.http}`;
  const grant = await buyGrant(pg, mintUrl);
  const spent = await spentToken(pg, mintUrl);
  if (grant === undefined)
    progress('no X-Paygress-Grant came back: grant scenarios skipped');

  if (values.soak) {
    const soak = await runSoak({
      paygress,
      base: pg,
      mintUrl,
      grant,
      spent,
      seconds: Number(values['soak-seconds']),
      dir,
    });
    writeReport(mode, {
      machine: describeMachine(),
      command,
      started,
      soak,
      ...(cgroup !== undefined && {
        cgroup: { dir: cgroup, ...cgroupMemory(cgroup) },
      }),
    });
  } else {
    const bare = await child('servers/bare-http.ts');
    const app = await child('servers/bare-http.ts');
    const bareGrpc = await child('servers/bare-grpc.ts');
    const bh = `http://127.0.0.1:${bare.ports.http}`;
    const grantHeader = grant
      ? ([['Authorization', `Bearer ${grant}`]] as const)
      : [];
    const replayHeader = [['X-Cashu', spent]] as const;
    const files = {
      deny: checkFile(dir, 'deny.bin', PRICED_PATH),
      grant: checkFile(dir, 'grant.bin', METERED_PATH, grantHeader),
      replay: checkFile(dir, 'replay.bin', PRICED_PATH, replayHeader),
    };
    const grpcUrl = (port: unknown) => `http://127.0.0.1:${port}${CHECK_PATH}`;

    const http: Scenario[] = [
      {
        name: 'deny /auth/forward (no token)',
        tool: 'wrk',
        url: `${pg}/auth/forward`,
        headers: forwardHeaders(PRICED_PATH),
        expect: '402',
      },
      {
        name: 'deny /auth/nginx (no token)',
        tool: 'wrk',
        url: `${pg}/auth/nginx`,
        headers: nginxHeaders(PRICED_PATH),
        expect: '401',
      },
      ...(grant
        ? [
            {
              name: 'allow /auth/forward (grant)',
              tool: 'wrk' as const,
              url: `${pg}/auth/forward`,
              headers: [...forwardHeaders(METERED_PATH), ...grantHeader],
              expect: '200',
            },
          ]
        : []),
      {
        name: 'replay deny /auth/forward (spent token)',
        tool: 'wrk',
        url: `${pg}/auth/forward`,
        headers: [...forwardHeaders(PRICED_PATH), ...replayHeader],
        expect: '402 PAYGRESS_TOKEN_REPLAYED',
      },
    ];
    const grpc: Scenario[] = [
      {
        name: 'deny Check (no token)',
        tool: 'h2load',
        url: grpcUrl(paygress.ports.grpc),
        dataFile: files.deny,
        expect: 'denied 402',
      },
      ...(grant
        ? [
            {
              name: 'allow Check (grant)',
              tool: 'h2load' as const,
              url: grpcUrl(paygress.ports.grpc),
              dataFile: files.grant,
              expect: 'ok',
            },
          ]
        : []),
      {
        name: 'replay deny Check (spent token)',
        tool: 'h2load',
        url: grpcUrl(paygress.ports.grpc),
        dataFile: files.replay,
        expect: 'denied 402 PAYGRESS_TOKEN_REPLAYED',
      },
    ];
    const probes = await checkExpectations(
      pg,
      Number(paygress.ports.grpc),
      grant,
      spent,
    );

    const httpResults = await runGroup(
      {
        name: 'bare node:http',
        tool: 'wrk',
        url: `${bh}/auth/forward`,
        headers: forwardHeaders(PRICED_PATH),
        expect: '200',
      },
      http,
      seconds,
    );
    const grpcResults = await runGroup(
      {
        name: 'bare grpc-js unary',
        tool: 'h2load',
        url: grpcUrl(bareGrpc.ports.grpc),
        dataFile: files.deny,
        expect: 'ok',
      },
      grpc,
      seconds,
    );

    const viaPaygress = await startAuthNginx(
      Number(paygress.ports.http),
      Number(app.ports.http),
    );
    const viaBare = await startAuthNginx(
      Number(bare.ports.http),
      Number(app.ports.http),
    );
    stoppers.push(viaPaygress.stop, viaBare.stop);
    const ngx = (port: number) => `http://127.0.0.1:${port}`;
    const nginxResults = await runGroup(
      {
        name: 'nginx + auth_request + bare server',
        tool: 'wrk',
        url: `${ngx(viaBare.port)}${METERED_PATH}`,
        headers: grantHeader,
        expect: '200',
      },
      [
        ...(grant
          ? [
              {
                name: 'nginx + auth_request + Paygress (grant)',
                tool: 'wrk' as const,
                url: `${ngx(viaPaygress.port)}${METERED_PATH}`,
                headers: grantHeader,
                expect: '200',
              },
            ]
          : []),
        {
          name: 'nginx + auth_request + Paygress (no token)',
          tool: 'wrk',
          url: `${ngx(viaPaygress.port)}${PRICED_PATH}`,
          expect: '402',
        },
      ],
      seconds,
    );
    const paygressRssMB = Math.round(paygress.rss() / 1048576);

    progress('redemption of fresh tokens');
    const redemption = await measureRedemption(
      pg,
      mintUrl,
      Number(mint.ports.stats),
      values.quick ? 30 : 100,
      paygress.pid,
    );
    progress(`redemption: Paygress p50 ${redemption.paygress.p50} ms`);
    const replayMemory = await replayCacheMemory();
    progress(`replay cache: +${replayMemory.addedRssMB} MB RSS`);
    const profiles = values['no-profile']
      ? undefined
      : await profileAll(
          mintUrl,
          Number(mint.ports.stats),
          Math.min(seconds, 5),
        );

    writeReport(mode, {
      machine: describeMachine(),
      command,
      started,
      secondsPerLoad: seconds,
      probes,
      http: httpResults,
      grpc: grpcResults,
      nginx: nginxResults,
      paygressRssMB,
      redemption,
      replayMemory,
      profiles,
    });
  }
} finally {
  for (const stop of stoppers) await stop();
  for (const c of children.reverse()) await c.stop();
  rmSync(dir, { recursive: true, force: true });
}

async function replayCacheMemory(): Promise<{ addedRssMB: number }> {
  const out = await new Promise<string>((resolve, reject) =>
    execFile(
      NODE,
      ['--expose-gc', here('replay-memory.ts')],
      { timeout: 120_000 },
      (err, stdout) => (err ? reject(err) : resolve(stdout)),
    ),
  );
  return JSON.parse(out) as { addedRssMB: number };
}

// A fresh, profiled Paygress per scenario, so each profile holds one kind
// of request; --cpu-prof writes when the process exits on SIGTERM.
async function profileAll(mintUrl: string, statsPort: number, secs: number) {
  const kinds = [
    'deny-forward',
    'allow-grant',
    'replay-deny',
    'deny-grpc',
    'redemption',
  ] as const;
  const out: Record<string, ReturnType<typeof topFrames>> = {};
  for (const kind of kinds) {
    const profDir = mkdtempSync(join(dir, `prof-${kind}-`));
    const p = await startChild(
      here('servers/paygress.ts'),
      ['--mint', mintUrl],
      {
        nodeArgs: [
          ...PAYGRESS_NODE_ARGS,
          '--cpu-prof',
          `--cpu-prof-dir=${profDir}`,
        ],
      },
    );
    try {
      const base = `http://127.0.0.1:${p.ports.http}`;
      // Only the setup a kind needs: one redemption is a visible share of
      // a few seconds' profile.
      const g = kind === 'allow-grant' ? await buyGrant(base, mintUrl) : '';
      const s = kind === 'replay-deny' ? await spentToken(base, mintUrl) : '';
      const load: Record<string, () => Promise<unknown>> = {
        'deny-forward': () =>
          runMax(
            {
              name: kind,
              tool: 'wrk',
              url: `${base}/auth/forward`,
              headers: forwardHeaders(PRICED_PATH),
              expect: '',
            },
            secs,
          ),
        'allow-grant': () =>
          runMax(
            {
              name: kind,
              tool: 'wrk',
              url: `${base}/auth/forward`,
              headers: [
                ...forwardHeaders(METERED_PATH),
                ['Authorization', `Bearer ${g}`],
              ],
              expect: '',
            },
            secs,
          ),
        'replay-deny': () =>
          runMax(
            {
              name: kind,
              tool: 'wrk',
              url: `${base}/auth/forward`,
              headers: [...forwardHeaders(PRICED_PATH), ['X-Cashu', s]],
              expect: '',
            },
            secs,
          ),
        'deny-grpc': () =>
          runMax(
            {
              name: kind,
              tool: 'h2load',
              url: `http://127.0.0.1:${p.ports.grpc}${CHECK_PATH}`,
              dataFile: checkFile(dir, 'prof-deny.bin', PRICED_PATH),
              expect: '',
            },
            secs,
          ),
        redemption: () => measureRedemption(base, mintUrl, statsPort, 50),
      };
      await load[kind]!();
    } finally {
      await p.stop(15_000);
    }
    const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
    out[kind] = file ? topFrames(join(profDir, file)) : [];
    progress(`profile ${kind}: ${out[kind]![0]?.frame ?? 'none written'}`);
  }
  return out;
}
