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
import { serveGrpc } from '../lib/child.ts';

const server = new grpc.Server();
server.addService(bareCheckDefinition, bareCheckImplementation);
serveGrpc(server);
