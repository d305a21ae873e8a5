/**
 * The Paygress dev mint: a Cashu mint for local runs and tests that speaks
 * the mint HTTP API (NUT-00 to 04, 06, 07, 09, 12, 23) with a fake
 * Lightning backend. For development only.
 */
import { DevMintServer } from './server.ts';
import type { DevMintServerOptions } from './server.ts';

export type { Fault, FaultRoute, MintRoute } from './faults.ts';
export { DevMintServer } from './server.ts';
export type { DevMintServerOptions } from './server.ts';

/** Options of {@link startDevMint}. */
export interface DevMintOptions {
  /** Interface to listen on. Default `127.0.0.1`. */
  host?: string;
  /** TCP port; 0 picks a free one. Default 0. */
  port?: number;
  /** Input fee of every keyset, ppk per proof. Default 0. */
  inputFeePpk?: number;
  /** Units with an active keyset. Default `['sat']`. */
  units?: string[];
  /** Master seed for the keys; same seed, same keys. Default: random. */
  seed?: Uint8Array;
  /** Whether to write JSON log lines to stdout. Default false. */
  log?: boolean;
  /** JSON file keeping keys and ledger across restarts. Default none. */
  stateFile?: string;
  /**
   * Whether it announces NUT-12 and signs with DLEQ proofs; `false` plays
   * a mint without NUT-12. Default true.
   */
  dleq?: boolean;
}

/** A running dev mint, as tests and scripts drive it. */
export type DevMint = Pick<
  DevMintServer,
  | 'url'
  | 'close'
  | 'stop'
  | 'start'
  | 'setFault'
  | 'rotateKeyset'
  | 'isSpent'
  | 'requests'
>;

/** Starts a dev mint and resolves once it listens. */
export async function startDevMint(
  options: DevMintOptions = {},
): Promise<DevMint> {
  const serverOptions: DevMintServerOptions = { ...options };
  const mint = new DevMintServer(serverOptions);
  await mint.start();
  return mint;
}
