/**
 * The mixed soak: for `seconds`, wrk cycles no-token, replayed and grant
 * requests through forward-auth (counting the answers by status and
 * reason), h2load sends no-token Checks, and one
 * client redeems freshly minted tokens back to back; Paygress's resident
 * memory is sampled every 5 s. Memory is called flat when the mean of the
 * last third of samples is within 10% of the mean of the first third
 * after the first minute.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mintToken } from '../../test/support/wallet.ts';
import type { Child } from './child.ts';
import {
  CHECK_PATH,
  METERED_PATH,
  PRICED_PATH,
  checkFile,
  forward,
  forwardHeaders,
} from './fixtures.ts';
import { WRK_STATUS_TAG, h2load, wrk } from './load.ts';
import { progress } from './scenario.ts';

/** Options of {@link runSoak}. */
export interface SoakOptions {
  readonly paygress: Child;
  readonly base: string;
  readonly mintUrl: string;
  readonly grant: string | undefined;
  readonly spent: string;
  /** Length of the soak, in s. */
  readonly seconds: number;
  /** Private temp directory for the wrk script. */
  readonly dir: string;
}

/** Runs the soak and returns the RSS samples and what they show. */
export async function runSoak(o: SoakOptions) {
  const samples: { s: number; rssMB: number }[] = [];
  const t0 = Date.now();
  const sample = () =>
    samples.push({
      s: Math.round((Date.now() - t0) / 1000),
      rssMB: Math.round((o.paygress.rss() / 1048576) * 10) / 10,
    });
  sample();
  const timer = setInterval(sample, 5000);

  const deadline = t0 + o.seconds * 1000;
  const [mixed, grpc, redeemed] = await Promise.all([
    wrk({
      url: `${o.base}/auth/forward`,
      seconds: o.seconds,
      connections: 16,
      headers: [],
      script: mixScript(o),
    }),
    h2load({
      url: `http://127.0.0.1:${o.paygress.ports.grpc}${CHECK_PATH}`,
      headers: [
        ['content-type', 'application/grpc'],
        ['te', 'trailers'],
      ],
      dataFile: checkFile(o.dir, 'soak-deny.bin', PRICED_PATH),
      seconds: o.seconds,
      clients: 2,
      streams: 4,
    }),
    redeemUntil(o, deadline),
  ]);
  clearInterval(timer);
  sample();

  const settled = samples.filter((x) => x.s >= 60);
  const third = Math.max(1, Math.floor(settled.length / 3));
  const mean = (xs: typeof samples) =>
    xs.reduce((a, x) => a + x.rssMB, 0) / xs.length;
  const early = mean(settled.slice(0, third));
  const late = mean(settled.slice(-third));
  progress(`soak: RSS ${early.toFixed(1)} MB → ${late.toFixed(1)} MB`);
  // Each kind in the rotation must get its own answer, and nothing else
  // may come back (a 400 or 500 would otherwise pass for a fast deny).
  const expected = [
    '402 PAYGRESS_PAYMENT_REQUIRED',
    '402 PAYGRESS_TOKEN_REPLAYED',
    ...(o.grant ? ['200'] : []),
  ];
  const got = mixed.statuses ?? {};
  const answersAsExpected =
    expected.every((k) => (got[k] ?? 0) > 0) &&
    Object.keys(got).every((k) => expected.includes(k));
  progress(`soak: HTTP answers ${JSON.stringify(got)}`);
  return {
    seconds: o.seconds,
    expectedAnswers: expected,
    answersAsExpected,
    mixed,
    grpc,
    redeemed,
    rss: {
      earlyMeanMB: Math.round(early * 10) / 10,
      lateMeanMB: Math.round(late * 10) / 10,
      maxMB: Math.max(...samples.map((x) => x.rssMB)),
      flat: Math.abs(late - early) <= 0.1 * early,
      samples,
    },
  };
}

// A wrk Lua script that rotates three requests and counts the answers by
// status and X-Paygress-Reason; written to a private temp file because it
// holds the grant and the spent token. The requests are formatted in
// `init`, which wrk calls after it has set `wrk.headers.Host`: formatted at
// load time they went out without a Host header, and Node's HTTP server
// answers every such HTTP/1.1 request 400 before Paygress sees it.
function mixScript(o: SoakOptions): string {
  const lua = (pairs: readonly (readonly [string, string])[]) =>
    `{${pairs.map(([k, v]) => `[${JSON.stringify(k)}]=${JSON.stringify(v)}`).join(',')}}`;
  const requests = [
    forwardHeaders(PRICED_PATH),
    [...forwardHeaders(PRICED_PATH), ['X-Cashu', o.spent] as const],
    ...(o.grant
      ? [
          [
            ...forwardHeaders(METERED_PATH),
            ['Authorization', `Bearer ${o.grant}`] as const,
          ],
        ]
      : []),
  ];
  const file = join(o.dir, 'mix.lua');
  writeFileSync(
    file,
    `local reqs
local i = 0
local threads = {}
counts = {}
setup = function(thread)
  table.insert(threads, thread)
end
init = function(args)
  reqs = {${requests.map((r) => `wrk.format("GET", "/auth/forward", ${lua(r)})`).join(',\n    ')}}
end
request = function()
  i = i + 1
  return reqs[(i % #reqs) + 1]
end
response = function(status, headers, body)
  local reason = headers["X-Paygress-Reason"] or headers["x-paygress-reason"]
  local key = reason and (status .. " " .. reason) or tostring(status)
  counts[key] = (counts[key] or 0) + 1
end
done = function(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("counts")) do
      total[k] = (total[k] or 0) + v
    end
  end
  for k, v in pairs(total) do
    io.write(string.format("${WRK_STATUS_TAG} %s\\t%d\\n", k, v))
  end
end
`,
    { mode: 0o600 },
  );
  return file;
}

async function redeemUntil(o: SoakOptions, deadline: number) {
  let allowed = 0;
  let refused = 0;
  while (Date.now() < deadline) {
    const token = await mintToken(o.mintUrl, 100);
    const res = await forward(o.base, PRICED_PATH, [['X-Cashu', token]]);
    if (res.status === 200) allowed++;
    else refused++;
  }
  return { allowed, refused };
}
