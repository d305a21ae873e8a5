/**
 * The bare gRPC baseline's one method: unary, on the ext_authz Check
 * path, taking the request's bytes without decoding them and answering
 * an empty message.
 */
import type * as grpc from '@grpc/grpc-js';
import { CHECK_PATH } from './fixtures.ts';

const identity = (b: Buffer) => b;
const empty = Buffer.alloc(0);

export const bareCheckDefinition: grpc.ServiceDefinition = {
  Check: {
    path: CHECK_PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};

export const bareCheckImplementation: grpc.UntypedServiceImplementation = {
  Check: (_call: unknown, callback: grpc.sendUnaryData<Buffer>) =>
    callback(null, empty),
};
