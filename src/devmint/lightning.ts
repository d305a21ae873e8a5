/**
 * The dev mint's fake Lightning backend: every invoice counts as paid the
 * moment it is made. Invoices are not signed BOLT11 payment requests; only
 * their human-readable prefix is meaningful, because that is what cashu-ts
 * reads (it checks that a sat quote's invoice carries the quoted amount).
 */
import { randomBytes } from 'node:crypto';

/** An invoice of the fake backend. */
export interface FakeInvoice {
  /** BOLT11-shaped string: `lnbcrt<amount><multiplier>1<data>`. */
  readonly request: string;
  /** Random 32-byte hex, unique per invoice. */
  readonly paymentHash: string;
  /** Always true: the fake backend settles at once. */
  readonly paid: boolean;
}

const BECH32_CHARSET = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l';

/**
 * Makes a paid invoice for `amount` of `unit`. Units other than `sat` and
 * `msat` are priced one-to-one with sats, as no exchange rate exists here.
 */
export function createFakeInvoice(amount: number, unit: string): FakeInvoice {
  const hash = randomBytes(32);
  // BOLT11 amounts: `n` is 100 msat (a tenth of a sat), `p` is 0.1 msat.
  const hrpAmount = unit === 'msat' ? `${amount * 10}p` : `${amount * 10}n`;
  const data = [...randomBytes(80)]
    .map((byte) => BECH32_CHARSET[byte % 32])
    .join('');

  return {
    request: `lnbcrt${hrpAmount}1${data}`,
    paymentHash: hash.toString('hex'),
    paid: true,
  };
}
