/**
 * One request per scenario before any load, to record that each scenario
 * gets the answer it claims to measure (a deny that is really a 500 would
 * otherwise pass for a fast deny).
 */
import {
  METERED_PATH,
  PRICED_PATH,
  checkOnce,
  forward,
  nginxHeaders,
} from './fixtures.ts';

/** Each probe's observed answer. */
export type Probes = Record<string, string>;

/** Sends each scenario's request once and records what came back. */
export async function checkExpectations(
  base: string,
  grpcPort: number,
  grant: string | undefined,
  spent: string,
): Promise<Probes> {
  const out: Probes = {};
  const noToken = await forward(base, PRICED_PATH);
  out['forward no token'] = answer(noToken.status, noToken.headers);
  const ngx = await fetch(`${base}/auth/nginx`, {
    headers: nginxHeaders(PRICED_PATH).map(([k, v]) => [k, v]),
  });
  await ngx.arrayBuffer();
  out['nginx no token'] = answer(ngx.status, ngx.headers);
  if (grant) {
    const allowed = await forward(base, METERED_PATH, [
      ['Authorization', `Bearer ${grant}`],
    ]);
    out['forward grant'] = answer(allowed.status, allowed.headers);
    const check = await checkOnce(grpcPort, METERED_PATH, [
      ['Authorization', `Bearer ${grant}`],
    ]);
    out['Check grant'] = check.allowed ? 'ok' : `denied ${check.httpStatus}`;
  }
  const replay = await forward(base, PRICED_PATH, [['X-Cashu', spent]]);
  out['forward replay'] = answer(replay.status, replay.headers);
  const check = await checkOnce(grpcPort, PRICED_PATH);
  out['Check no token'] = check.allowed ? 'ok' : `denied ${check.httpStatus}`;
  return out;
}

function answer(status: number, headers: Headers): string {
  const reason = headers.get('x-paygress-reason');
  return reason ? `${status} ${reason}` : String(status);
}
