/**
 * Forward-auth as Traefik `forwardAuth` and Caddy `forward_auth` call it.
 *
 * The original request is described by `X-Forwarded-Method`, `-Proto`,
 * `-Host` and `-Uri`. They are trustworthy only because these proxies set
 * them: Caddy always overwrites them, Traefik does with
 * `trustForwardHeader: false` (as deploy/traefik configures it). Any
 * non-2xx answer reaches the client as it is, so a deny is a full 402 with
 * `X-Cashu` and a JSON body.
 */
import type { IncomingMessage } from 'node:http';
import type { AuthRequest, Decision } from '../core/model.ts';
import {
  allowReply,
  denyBody,
  denyHeaders,
  isBadPayment,
} from './payment-headers.ts';
import {
  firstForwarded,
  flattenHeaders,
  headerText,
  hostOnly,
  requestIdFrom,
  splitUri,
} from './request-parts.ts';
import type { Reply } from './reply.ts';

/** Reads the original request from forward-auth headers. */
export function forwardAuthRequest(req: IncomingMessage): AuthRequest {
  const headers = flattenHeaders(req.headers);
  const { path, query } = splitUri(
    headerText(headers['x-forwarded-uri'] ?? req.url),
  );
  return {
    protocol: 'forward',
    // As sent: pricing refuses a method that is not upper-case.
    method: headers['x-forwarded-method'] ?? req.method ?? 'GET',
    scheme: (headers['x-forwarded-proto'] ?? '').toLowerCase(),
    host: hostOnly(headers['x-forwarded-host'] ?? headers['host']),
    path,
    query,
    headers,
    clientAddress: firstForwarded(
      headers['x-forwarded-for'],
      req.socket.remoteAddress ?? '',
    ),
    requestId: requestIdFrom(headers['x-request-id']),
  };
}

/**
 * 200 with the payment headers, or with a body 402 (payer; 400 for a
 * token not as requested, NUT-24) or 503 (ours).
 */
export function forwardAuthReply(decision: Decision): Reply {
  if (decision.kind === 'allow') return allowReply(decision);

  const headers: Record<string, string> = {
    ...denyHeaders(decision),
    'Content-Type': 'application/json',
    'Cache-Control': 'no-store',
  };
  if (decision.fault === 'ours') headers['Retry-After'] = '5';
  return {
    status:
      decision.fault === 'ours' ? 503 : isBadPayment(decision) ? 400 : 402,
    headers,
    body: denyBody(decision),
  };
}
