/**
 * The bare gRPC baseline: a grpc-js server with one unary method on the
 * ext_authz Check path that answers an empty message without decoding the
 * request. It is the ceiling Paygress's gRPC listener is compared against.
 * Reports its port over IPC; stops on SIGTERM.
 */
import * as grpc from '@grpc/grpc-js';
import {
  bareCheckDefinition,
  bareCheckImplementation,
} from '../lib/bare-check.ts';
import { reportReady } from '../lib/child.ts';

const server = new grpc.Server();
server.addService(bareCheckDefinition, bareCheckImplementation);
server.bindAsync(
  '127.0.0.1:0',
  grpc.ServerCredentials.createInsecure(),
  (err, port) => {
    if (err) throw err;
    reportReady({ grpc: port });
  },
);
process.once('SIGTERM', () => server.tryShutdown(() => process.exit(0)));
