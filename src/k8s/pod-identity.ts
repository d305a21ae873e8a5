/**
 * How Paygress names and marks the pods it owns. The name and labels derive
 * only from the grant id, so any Paygress process (a restarted one, or a
 * second replica) finds the same pod for the same grant.
 */
import { createHash } from 'node:crypto';

/** Label on every pod Paygress creates; the reaper lists by it. */
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';

/** Value of {@link MANAGED_BY_LABEL} on Paygress's pods. */
export const MANAGED_BY_VALUE = 'paygress';

/** Label holding {@link grantHash} of the grant a pod serves. */
export const GRANT_LABEL = 'paygress.dev/grant';

/** Annotation holding the pod's paid-for expiry as ISO 8601 UTC. */
export const EXPIRES_AT_ANNOTATION = 'paygress.dev/expires-at';

/**
 * Annotation of a pod made anew after the cluster stopped its grant's
 * earlier one: when that first pod started (ISO 8601 UTC), from which its
 * `maxLifetimeSeconds` still counts.
 */
export const LIFETIME_FROM_ANNOTATION = 'paygress.dev/lifetime-from';

/** Prefix of every pod name Paygress creates. */
export const POD_NAME_PREFIX = 'paygress-';

/**
 * Label selector matching exactly the pods Paygress manages: the managed-by
 * label with our value, and a grant label present.
 */
export const MANAGED_SELECTOR = `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE},${GRANT_LABEL}`;

/**
 * The first 20 hex digits (80 bits) of sha256 of the grant id. Hashing keeps
 * the grant id itself out of the cluster and always yields a valid label
 * value and DNS-1123 name fragment, whatever characters the id holds.
 */
export function grantHash(grantId: string): string {
  return createHash('sha256')
    .update(grantId, 'utf8')
    .digest('hex')
    .slice(0, 20);
}

/** The pod name for a grant: `paygress-` and {@link grantHash} (29 chars). */
export function podNameFor(grantId: string): string {
  return POD_NAME_PREFIX + grantHash(grantId);
}

/** Expiry as stored in {@link EXPIRES_AT_ANNOTATION} (ms since epoch in). */
export function formatExpiry(expiresAt: number): string {
  return new Date(expiresAt).toISOString();
}

/**
 * Reads an expiry annotation back as ms since epoch; undefined when the
 * annotation is absent or not a date (a pod someone edited by hand).
 */
export function parseExpiry(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = Date.parse(value);
  return Number.isFinite(ms) ? ms : undefined;
}
