import type { AuthRequest } from '../../src/core/model.ts';

/**
 * A request as an adapter hands it to the core: a GET of
 * https://app.example/premium from a documentation address, no headers.
 */
export function authRequest(requestId: string): AuthRequest {
  return {
    protocol: 'forward',
    method: 'GET',
    scheme: 'https',
    host: 'app.example',
    path: '/premium',
    query: '',
    headers: {},
    clientAddress: '203.0.113.7',
    requestId,
  };
}
