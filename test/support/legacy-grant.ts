/**
 * Grant credentials as Paygress issued them before it set `__Host-`
 * cookies over https: the same payload without its `h` field, signed
 * with the same key.
 */
import { createHmac } from 'node:crypto';

/** `credential` re-signed under `key` as an older Paygress issued it. */
export function asIssuedBeforeHostCookies(
  credential: string,
  key: string,
): string {
  const [prefix, body] = credential.split('.');
  const payload = JSON.parse(Buffer.from(body!, 'base64url').toString('utf8'));
  if (payload.h !== 1) throw new Error('not a credential of this Paygress');
  delete payload.h;
  const signed = `${prefix}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
  const mac = createHmac('sha256', Buffer.from(key, 'utf8'))
    .update(signed, 'ascii')
    .digest('base64url');
  return `${signed}.${mac}`;
}
