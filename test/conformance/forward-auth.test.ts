import t from 'tap';
import { CADDY_BIN } from '../support/caddy.ts';
import { withPeers } from '../support/peers.ts';

await withPeers(t, [CADDY_BIN], () => import('./forward-auth.cases.ts'));
