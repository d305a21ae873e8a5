/**
 * The checks a real mint makes on inputs and outputs (NUT-02, NUT-03,
 * NUT-04) before it signs anything, each refused with its NUT error code.
 */
import {
  Amount,
  getSecretKind,
  isP2PKSpendAuthorised,
  type Proof,
} from '@cashu/cashu-ts';
import { isValidSignature, parsePoint, proofY } from './crypto.ts';
import type { Point } from './crypto.ts';
import { ERROR_CODES, MintFailure } from './errors.ts';
import type { KeysetRegistry, MintKeyset } from './keysets.ts';
import type { Ledger } from './ledger.ts';
import type { WireBlindedMessage, WireProof } from './wire.ts';

/** Inputs that passed every check, with what the caller needs next. */
export interface CheckedInputs {
  readonly unit: string;
  readonly total: number;
  /** `ceil(sum(input_fee_ppk) / 1000)` (NUT-02). */
  readonly fee: number;
  readonly ys: string[];
}

/** Outputs that passed every check, ready to sign. */
export interface CheckedOutputs {
  readonly unit: string | undefined;
  readonly total: number;
  readonly items: {
    output: WireBlindedMessage;
    point: Point;
    keyset: MintKeyset;
  }[];
}

function keysetOf(keysets: KeysetRegistry, id: string): MintKeyset {
  const keyset = keysets.get(id);
  if (!keyset) {
    throw new MintFailure(
      ERROR_CODES.keysetUnknown,
      `keyset ${id} is not known`,
    );
  }
  return keyset;
}

function singleUnit(units: Set<string>, what: string): string | undefined {
  if (units.size > 1) {
    throw new MintFailure(
      ERROR_CODES.multipleUnits,
      `${what} of multiple units`,
    );
  }
  return [...units][0];
}

/**
 * Checks inputs: known keyset (active or not), one unit, no duplicate `Y`,
 * a valid signature `C == k * hash_to_curve(secret)`, and neither spent
 * nor pending.
 */
export function checkInputs(
  inputs: readonly WireProof[],
  keysets: KeysetRegistry,
  ledger: Ledger,
): CheckedInputs {
  const units = new Set<string>();
  const ys: string[] = [];
  let total = 0;
  let feePpk = 0;

  for (const proof of inputs) {
    const keyset = keysetOf(keysets, proof.id);
    const key = keyset.privateKeys[String(proof.amount)];
    const C = parsePoint(proof.C);
    if (!key || !C || !isValidSignature(proof.secret, C, key)) {
      throw new MintFailure(ERROR_CODES.proofInvalid, 'could not verify proof');
    }
    checkSpendingConditions(proof);
    units.add(keyset.unit);
    ys.push(proofY(proof.secret));
    total += proof.amount;
    feePpk += keyset.inputFeePpk;
  }

  const unit = singleUnit(units, 'inputs') as string;
  if (new Set(ys).size !== ys.length) {
    throw new MintFailure(ERROR_CODES.duplicateInputs, 'duplicate inputs');
  }
  for (const y of ys) {
    const state = ledger.state(y);
    if (state === 'SPENT') {
      throw new MintFailure(ERROR_CODES.proofsSpent, 'proofs already spent');
    }
    if (state === 'PENDING') {
      throw new MintFailure(ERROR_CODES.proofsPending, 'proofs are pending');
    }
  }

  return { unit, total, fee: Math.ceil(feePpk / 1000), ys };
}

/**
 * NUT-10/11: a P2PK-locked input needs a witness signature by the locking
 * key (or, past its locktime, a refund key). SIG_ALL is not supported.
 */
function checkSpendingConditions(proof: WireProof): void {
  let kind: string;
  try {
    kind = getSecretKind(proof.secret);
  } catch {
    return; // a plain secret carries no conditions
  }
  if (kind !== 'P2PK') {
    throw new MintFailure(
      ERROR_CODES.proofInvalid,
      `unsupported secret kind ${kind}`,
    );
  }

  let authorised = false;
  try {
    authorised = isP2PKSpendAuthorised({
      ...proof,
      amount: Amount.from(proof.amount),
    } as Proof);
  } catch {
    authorised = false;
  }
  if (!authorised) {
    throw new MintFailure(
      ERROR_CODES.witnessInvalid,
      'P2PK spending conditions not met: missing or invalid witness signature',
    );
  }
}

/**
 * Checks outputs: known and active keyset, one unit, an amount the keyset
 * has a key for, a valid point `B_`, no duplicate `B_`, never signed and
 * not being signed.
 */
export function checkOutputs(
  outputs: readonly WireBlindedMessage[],
  keysets: KeysetRegistry,
  ledger: Ledger,
): CheckedOutputs {
  const units = new Set<string>();
  const items: CheckedOutputs['items'] = [];
  let total = 0;

  for (const output of outputs) {
    const keyset = keysetOf(keysets, output.id);
    if (!keyset.active) {
      throw new MintFailure(
        ERROR_CODES.keysetInactive,
        `keyset ${keyset.id} is inactive, cannot sign messages`,
      );
    }
    if (!keyset.privateKeys[String(output.amount)]) {
      throw new MintFailure(
        ERROR_CODES.amountOutOfRange,
        `amount ${output.amount} is not a denomination of keyset ${keyset.id}`,
      );
    }
    const point = parsePoint(output.B_);
    if (!point) {
      throw new MintFailure(ERROR_CODES.unspecified, 'invalid blinded message');
    }
    units.add(keyset.unit);
    items.push({ output, point, keyset });
    total += output.amount;
  }

  const blinded = outputs.map((output) => output.B_);
  if (new Set(blinded).size !== blinded.length) {
    throw new MintFailure(ERROR_CODES.duplicateOutputs, 'duplicate outputs');
  }
  for (const B_ of blinded) {
    if (ledger.issued(B_)) {
      throw new MintFailure(
        ERROR_CODES.outputsSigned,
        'outputs already signed',
      );
    }
    if (ledger.isOutputPending(B_)) {
      throw new MintFailure(ERROR_CODES.outputsPending, 'outputs are pending');
    }
  }

  return { unit: singleUnit(units, 'outputs'), total, items };
}
