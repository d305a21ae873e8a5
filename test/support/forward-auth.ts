/**
 * One forward-auth check of `GET https://app.example/premium`, as Traefik
 * or Caddy asks it of a Paygress process, with a token or without: its
 * status, reason code and how long it took.
 */
export async function forwardAuth(
  base: string,
  token?: string,
): Promise<{ status: number; reason: string | null; ms: number }> {
  const started = performance.now();
  const res = await fetch(`${base}/auth/forward`, {
    headers: {
      ...(token === undefined ? {} : { 'X-Cashu': token }),
      'X-Forwarded-Method': 'GET',
      'X-Forwarded-Proto': 'https',
      'X-Forwarded-Host': 'app.example',
      'X-Forwarded-Uri': '/premium',
    },
  });
  await res.text();
  return {
    status: res.status,
    reason: res.headers.get('x-paygress-reason'),
    ms: performance.now() - started,
  };
}
