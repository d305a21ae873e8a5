import t from 'tap';
import { NGINX_BIN } from '../support/nginx.ts';
import { withPeers } from '../support/peers.ts';

await withPeers(t, [NGINX_BIN], () => import('./grant-delivery.cases.ts'));
