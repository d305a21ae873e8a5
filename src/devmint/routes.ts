/**
 * Maps HTTP method and path to a mint route and runs it against the core.
 * Knows nothing of sockets or faults beyond the swap hook it is handed.
 */
import type { MintRoute } from './faults.ts';
import { mintInfo } from './info.ts';
import type { DevMintCore, SwapHooks } from './mint.ts';

/** A matched request: its route and, for `keys`/quote lookups, the id. */
export interface RouteMatch {
  readonly route: MintRoute;
  readonly param?: string;
  /** Whether the route takes a JSON body. */
  readonly hasBody: boolean;
}

/** Matches `method` and `path` (no query) to a route, if any. */
export function matchRoute(
  method: string,
  path: string,
): RouteMatch | undefined {
  if (method === 'GET') {
    if (path === '/v1/info') return { route: 'info', hasBody: false };
    if (path === '/v1/keys') return { route: 'keys', hasBody: false };
    if (path === '/v1/keysets') return { route: 'keysets', hasBody: false };
    const keys = /^\/v1\/keys\/([^/]+)$/.exec(path);
    if (keys)
      return {
        route: 'keys',
        param: decodeURIComponent(keys[1] as string),
        hasBody: false,
      };
    const quote = /^\/v1\/mint\/quote\/bolt11\/([^/]+)$/.exec(path);
    if (quote)
      return {
        route: 'mint-quote',
        param: decodeURIComponent(quote[1] as string),
        hasBody: false,
      };
  }
  if (method === 'POST') {
    if (path === '/v1/swap') return { route: 'swap', hasBody: true };
    if (path === '/v1/checkstate')
      return { route: 'checkstate', hasBody: true };
    if (path === '/v1/restore') return { route: 'restore', hasBody: true };
    if (path === '/v1/mint/quote/bolt11')
      return { route: 'mint-quote', hasBody: true };
    if (path === '/v1/mint/bolt11') return { route: 'mint', hasBody: true };
  }
  return undefined;
}

/** Runs a matched route; resolves with the JSON answer or throws. */
export async function runRoute(
  core: DevMintCore,
  match: RouteMatch,
  body: unknown,
  hooks: SwapHooks,
): Promise<unknown> {
  switch (match.route) {
    case 'info':
      return mintInfo(core.keysets.units());
    case 'keys':
      return match.param === undefined
        ? core.activeKeys()
        : core.keysFor(match.param);
    case 'keysets':
      return core.keysetList();
    case 'swap':
      return core.swap(body, hooks);
    case 'checkstate':
      return core.checkState(body);
    case 'restore':
      return core.restore(body);
    case 'mint-quote':
      return match.param === undefined
        ? core.createMintQuote(body)
        : core.mintQuote(match.param);
    case 'mint':
      return core.mint(body);
  }
}
