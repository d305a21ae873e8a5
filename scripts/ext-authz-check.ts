/**
 * Sends one Envoy ext_authz v3 Check to Paygress, as Envoy would for
 * `GET https://app.example/premium`, and prints the decision. For trying
 * the gRPC protocol by hand:
 *
 *   node_modules/.bin/node scripts/ext-authz-check.ts [--addr 127.0.0.1:9001] [TOKEN]
 */
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const args = process.argv.slice(2);
if (args.includes('--help') || args.includes('-h')) {
  process.stdout.write(
    'usage: node_modules/.bin/node scripts/ext-authz-check.ts [--addr HOST:PORT] [TOKEN]\nSends one ext_authz Check for GET https://app.example/premium (with TOKEN in x-cashu, if given) to Paygress at HOST:PORT (default 127.0.0.1:9001) and prints the decision.\n',
  );
  process.exit(0);
}
const at = args.indexOf('--addr');
const addr = at === -1 ? '127.0.0.1:9001' : args.splice(at, 2)[1]!;
const token = args[0];

const definition = protoLoader.loadSync(
  'envoy/service/auth/v3/external_auth.proto',
  {
    includeDirs: [fileURLToPath(new URL('../proto/', import.meta.url))],
    keepCase: true,
    enums: String,
    defaults: false,
  },
);
const proto = grpc.loadPackageDefinition(definition) as any;
const client = new proto.envoy.service.auth.v3.Authorization(
  addr,
  grpc.credentials.createInsecure(),
);

const headers: Record<string, string> = {
  ':authority': 'app.example',
  ':method': 'GET',
  ':path': '/premium',
};
if (token) headers['x-cashu'] = token;

client.Check(
  {
    attributes: {
      request: {
        http: {
          method: 'GET',
          host: 'app.example',
          path: '/premium',
          scheme: 'https',
          headers,
        },
      },
    },
  },
  { deadline: Date.now() + 10_000 },
  (err: grpc.ServiceError | null, response: any) => {
    client.close();
    if (err) {
      console.log(
        `RPC error ${grpc.status[err.code]} (${err.code}): ${err.details}`,
      );
      process.exitCode = 1;
      return;
    }
    console.log(JSON.stringify(response, null, 2));
  },
);
