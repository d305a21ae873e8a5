/**
 * Error codes of a request that never reached its server: no connection
 * was made (refused, unreachable, the name not resolved, the connect
 * timed out), so nothing it asked for can have happened there.
 */
export const NOT_SENT: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_CONNECT_TIMEOUT',
]);
