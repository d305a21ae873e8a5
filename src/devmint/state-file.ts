/**
 * Optional persistence for the dev mint: its key seed and its ledger of
 * spent proofs and issued signatures, in one JSON file, so that a dev mint
 * restarted beside a Paygress that kept its wallet still honours (and
 * refuses) the ecash of its earlier runs. Rotated keysets are not kept.
 */
import { randomBytes } from 'node:crypto';
import {
  existsSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { Ledger, type LedgerSnapshot } from './ledger.ts';

interface StateFile extends LedgerSnapshot {
  /** Hex master seed of the keysets. */
  readonly seed: string;
}

/** The seed and ledger stored in `path`, created on first use. */
export function loadState(path: string): { seed: Uint8Array; ledger: Ledger } {
  const state: StateFile = existsSync(path)
    ? (JSON.parse(readFileSync(path, 'utf8')) as StateFile)
    : { seed: randomBytes(32).toString('hex'), spent: [], issued: [] };
  const seed = Buffer.from(state.seed, 'hex');
  const ledger = Ledger.from(state);

  const save = () => {
    const next: StateFile = { seed: state.seed, ...ledger.snapshot() };
    // Owner-only like the wallet beside it: the seed signs the dev mint's
    // ecash. A stale .tmp of another mode is replaced, not reused.
    rmSync(`${path}.tmp`, { force: true });
    writeFileSync(`${path}.tmp`, JSON.stringify(next), { mode: 0o600 });
    renameSync(`${path}.tmp`, path);
  };
  ledger.onCommit = save;
  save();
  return { seed, ledger };
}
