/**
 * A mint served under a path (`https://host/cashu`, as behind a reverse
 * proxy that routes by path) is a mint like any other: payments redeem,
 * and each mint operation keeps its own breaker and metrics label.
 */
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { startDevMint } from '../../src/devmint/index.ts';
import { PROTOCOLS, send, startStack } from '../support/stack.ts';
import { mintToken } from '../support/wallet.ts';

/** A reverse proxy on loopback serving `target` under `/cashu`. */
async function underPath(
  target: string,
): Promise<{ url: string; server: Server }> {
  const upstream = new URL(target);
  const server = createServer((req, res) => {
    if (!req.url?.startsWith('/cashu/')) {
      res.writeHead(404, { 'content-length': '0' }).end();
      return;
    }
    const forwarded = request(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url.slice('/cashu'.length),
        headers: req.headers,
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    forwarded.on('error', () => res.destroy());
    req.pipe(forwarded);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/cashu`, server };
}

t.test('payments redeem at a mint served under a path', async (t) => {
  const mint = await startDevMint();
  t.teardown(() => mint.close());
  const proxy = await underPath(mint.url);
  t.teardown(() => proxy.server.close());
  const s = await startStack({ mint, env: { PAYGRESS_MINTS: proxy.url } });
  t.teardown(() => s.close());

  for (const protocol of PROTOCOLS) {
    const token = await mintToken(proxy.url, 100);
    const out = await send(s, protocol, { 'X-Cashu': token });
    t.equal(out.allowed, true, `${protocol}: paid`);
  }
  t.equal(mint.requests('swap'), 3, 'each payment swapped at the mint');

  const metrics = await (await fetch(`${s.base}/metrics`)).text();
  const requests = metrics
    .split('\n')
    .filter((line) => line.startsWith('paygress_mint_requests_total{'));
  const label = (operation: string) =>
    `paygress_mint_requests_total{mint="${proxy.url}",operation="${operation}",outcome="ok"}`;
  t.ok(
    requests.some((line) => line.startsWith(`${label('swap')} 3`)),
    'swaps are counted as swaps',
  );
  t.ok(
    requests.some((line) => line.startsWith(label('keysets'))),
    'keyset fetches as keysets',
  );
  t.notOk(
    requests.some((line) => line.includes('operation=""')),
    'no request without its operation',
  );
});
