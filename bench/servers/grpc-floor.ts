/**
 * A grpc-js server that does part of what Paygress does for a no-token
 * Check, for bench/grpc-floor.ts to take apart where a refusal's cost
 * goes. `--mode`:
 *
 * - `bare`: the bare baseline (the request's bytes not decoded, an empty
 *   answer);
 * - `answer`: the bytes of Paygress's own refusal as the answer, the
 *   request not decoded;
 * - `adapter`: Paygress's ext_authz service itself (decoding, reading the
 *   request, rendering), with a decider that returns the refusal the gate
 *   returns for a request without a token: no pricing, no metrics, no
 *   decision log.
 *
 * Reports its port over IPC; stops on SIGTERM.
 */
import * as grpc from '@grpc/grpc-js';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { createExtAuthzService } from '../../src/protocols/ext-authz.ts';
import {
  bareCheckDefinition,
  bareCheckImplementation,
} from '../lib/bare-check.ts';
import { serveGrpc } from '../lib/child.ts';
import { NO_TOKEN_REFUSAL, checkRequest } from '../lib/fixtures.ts';

const { values } = parseArgs({ options: { mode: { type: 'string' } } });

const adapter = createExtAuthzService({
  decider: { decide: async () => NO_TOKEN_REFUSAL },
  logger: pino({ level: 'silent' }),
});

const server = new grpc.Server();
switch (values.mode) {
  case 'bare':
    server.addService(bareCheckDefinition, bareCheckImplementation);
    break;
  case 'answer': {
    // The adapter's own encoding of the refusal, taken from one call.
    const bytes = await encodedRefusal();
    server.addService(bareCheckDefinition, {
      Check: (_call: unknown, callback: grpc.sendUnaryData<Buffer>) =>
        callback(null, bytes),
    });
    break;
  }
  case 'adapter':
    server.addService(adapter.definition, adapter.implementation);
    break;
  default:
    throw new Error('--mode bare|answer|adapter');
}
serveGrpc(server);

function encodedRefusal(): Promise<Buffer> {
  const check = adapter.implementation['Check'] as grpc.handleUnaryCall<
    Buffer,
    Buffer
  >;
  const call = {
    request: checkRequest('/premium'),
    cancelled: false,
  } as unknown as grpc.ServerUnaryCall<Buffer, Buffer>;
  return new Promise((resolve, reject) =>
    check(call, (err, bytes) =>
      err || !bytes ? reject(err ?? new Error('no answer')) : resolve(bytes),
    ),
  );
}
