/**
 * NGINX `auth_request` (plain nginx and ingress-nginx).
 *
 * nginx accepts only 2xx, 401 and 403 from an auth service; anything else,
 * 402 included, becomes a 500 for the client. So a payment refusal is a
 * 401 carrying the payment headers and one `WWW-Authenticate` challenge
 * that holds the payment request (the only header ingress-nginx without
 * snippets copies to the client); nginx maps it to 402 where the config
 * allows. Every answer has an empty body: nginx discards auth bodies, and
 * a body makes it close the upstream connection instead of reusing it.
 *
 * The original request comes from `X-Original-URL` / `X-Original-Method`
 * (ingress-nginx, and our nginx config), else `X-Original-URI` + `Host`.
 * nginx passes the client's headers on to the subrequest, so whichever of
 * the two the proxy does not set, the client can: when both are present
 * and name different requests, the request is refused. `X-Forwarded-*` is
 * ignored: ingress-nginx does not set it, so a client could.
 */
import type { IncomingMessage } from 'node:http';
import type { AuthRequest, Decision } from '../core/model.ts';
import {
  allowReply,
  denyHeaders,
  handsMoneyBack,
  paymentChallenge,
} from './payment-headers.ts';
import {
  flattenHeaders,
  headerText,
  hostOnly,
  requestIdFrom,
  splitUri,
} from './request-parts.ts';
import type { Reply } from './reply.ts';

/** Reads the original request from nginx's auth subrequest headers. */
export function nginxAuthRequest(req: IncomingMessage): AuthRequest {
  const headers = flattenHeaders(req.headers);
  const original = parseOriginalUrl(headers['x-original-url']);
  const originalUri = headers['x-original-uri'];
  const uri = original?.uri ?? originalUri ?? req.url;
  const { path, query } = splitUri(headerText(uri));
  const conflicting =
    original !== undefined &&
    originalUri !== undefined &&
    originalUri !== original.uri;
  const oddHost = original !== undefined && /[?#@\s\\]/.test(original.host);
  return {
    protocol: 'nginx',
    method: headers['x-original-method'] ?? req.method ?? 'GET',
    scheme: original?.scheme ?? (headers['x-scheme'] ?? '').toLowerCase(),
    host: nginxHost(original?.host ?? headers['host']),
    path,
    query,
    headers,
    clientAddress: headers['x-real-ip'] ?? req.socket.remoteAddress ?? '',
    requestId: requestIdFrom(headers['x-request-id']),
    ...(conflicting && {
      ambiguity:
        'X-Original-URL and X-Original-URI name different requests; the proxy must set the one it uses, and a client sends neither',
    }),
    ...(oddHost && {
      ambiguity:
        "X-Original-URL's host holds a character no host or port has (? # @ \\ or a space): where its path begins is not clear",
    }),
  };
}

/**
 * 200 with payment headers, 401 (payer, or a refund) or 503 (ours); never
 * a body.
 */
export function nginxAuthReply(decision: Decision): Reply {
  if (decision.kind === 'allow') return allowReply(decision);

  const headers: Record<string, string> = {
    ...denyHeaders(decision),
    'Cache-Control': 'no-store',
  };
  // nginx shows the client a bare 500 for any status but 401 and 403, and
  // drops its headers: a refund or credit must ride on a 401 or it is lost.
  if (decision.fault === 'ours' && !handsMoneyBack(decision)) {
    return { status: 503, headers, body: '' };
  }
  headers['WWW-Authenticate'] = paymentChallenge(decision);
  return { status: 401, headers, body: '' };
}

/**
 * The host nginx routes a request on (`$host`): unbracketed, up to the
 * first colon, so `app.example.com:1:2` is priced as the
 * `app.example.com` nginx serves it as, not read as an IPv6 address.
 */
function nginxHost(value: string | undefined): string {
  const host = (value ?? '').trim();
  if (host.startsWith('[')) return hostOnly(host);
  const colon = host.indexOf(':');
  return hostOnly(colon === -1 ? host : host.slice(0, colon));
}

/**
 * `scheme://host/uri` as ingress-nginx builds it from `$http_host` (the
 * client's Host, as sent) and `$request_uri`. The host ends at the first
 * `/`, which nginx refuses in a Host: a `?` in the Host's port, which
 * nginx lets through, must not start the query and take the path with
 * it (`Host: app:1?` made every path read as `/`).
 */
function parseOriginalUrl(
  value: string | undefined,
): { scheme: string; host: string; uri: string } | undefined {
  const match = value
    ? /^([a-z][a-z0-9+.-]*):\/\/([^/]*)(.*)$/i.exec(value)
    : null;
  if (!match) return undefined;
  return {
    scheme: match[1]!.toLowerCase(),
    host: match[2]!,
    uri: match[3] || '/',
  };
}
