/**
 * NUT-18 payment requests for a price, as NUT-24 puts them in `X-Cashu`.
 * A price's request never changes, so each is encoded once.
 */
import { PaymentRequest } from '@cashu/cashu-ts';
import type { Price } from './model.ts';

const cache = new Map<string, string>();
const CACHE_LIMIT = 1024;

/**
 * The `creqA…` request asking for `price` from one of its mints. No
 * transport is named: NUT-24 pays in band, by retrying the HTTP request.
 */
export function paymentRequestFor(price: Price, description?: string): string {
  const key = `${price.amount} ${price.unit} ${price.mints.join(' ')} ${description ?? ''}`;
  const cached = cache.get(key);
  if (cached !== undefined) return cached;

  const request = new PaymentRequest(
    undefined,
    undefined,
    price.amount,
    price.unit,
    [...price.mints],
    description,
    true,
  ).toEncodedCreqA();

  if (cache.size >= CACHE_LIMIT) cache.clear();
  cache.set(key, request);
  return request;
}
