/**
 * Envoy's gRPC external authorization (`envoy.service.auth.v3`), as Envoy
 * and Istio `CUSTOM` policies call it. Translates a CheckRequest into an
 * AuthRequest, asks the core, and renders the decision: a decision is
 * always an OK RPC (allow: status 0; deny: status 7 with an HTTP 402, or
 * 400 for a token not as requested, NUT-24), and only our own faults
 * become an RPC error, so Envoy's `failure_mode_allow` and
 * `status_on_error` apply to them and never to a payment decision. A
 * fault of ours that hands money back (a refund or credit after a failed
 * pod) is a denied response too, an HTTP 503, so that the money arrives.
 */
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { Logger } from 'pino';
import type {
  Allow,
  AuthRequest,
  Decider,
  Decision,
  Deny,
} from '../core/model.ts';
import { NotHttpError, toPaygressError } from '../core/errors.ts';
import { createDecisionLog, type DecisionObserver } from './decision-log.ts';
import {
  denyBody,
  denyHeaders,
  handsMoneyBack,
  isBadPayment,
} from './payment-headers.ts';
import { InFlight } from './in-flight.ts';
import {
  deliversPayment,
  logError,
  renderOnce,
  reportSentLate,
  reportUndelivered,
} from './reply.ts';
import {
  carriesPaygressCredential,
  hostOnly,
  newRequestId,
  requestIdFrom,
  splitUri,
} from './request-parts.ts';

/** Full gRPC method path Envoy calls. */
export const EXT_AUTHZ_CHECK_PATH =
  '/envoy.service.auth.v3.Authorization/Check';

/**
 * Envoy refuses header values longer than this many bytes, so a header we
 * cannot send whole is left out (and logged) rather than cut.
 */
export const MAX_HEADER_VALUE_BYTES = 16_384;

const PROTO_DIR = fileURLToPath(new URL('../../proto/', import.meta.url));
const OVERWRITE = 'OVERWRITE_IF_EXISTS_OR_ADD';
// For Set-Cookie on the client's response: a line of its own beside the
// application's cookies, which an overwrite would delete.
const APPEND = 'APPEND_IF_EXISTS_OR_ADD';

/**
 * A paid allow ready less than this before the caller's deadline is kept
 * owed as well as sent (see answerCheck).
 */
export const LATE_ANSWER_MS = 100;
const UNSENDABLE_VALUE = /[\r\n\0]/;
const UTF8 = new TextDecoder();

// Shapes as @grpc/proto-loader hands them over: proto field names, absent
// fields left out (defaults: false), enums as their names.
interface HeaderValueWire {
  key?: string;
  value?: string;
  raw_value?: Uint8Array;
}
interface HttpRequestWire {
  id?: string;
  method?: string;
  headers?: Record<string, string>;
  path?: string;
  host?: string;
  scheme?: string;
  header_map?: { headers?: HeaderValueWire[] };
}
interface CheckRequestWire {
  attributes?: {
    source?: { address?: { socket_address?: { address?: string } } };
    request?: { http?: HttpRequestWire };
  };
}
interface HeaderOptionWire {
  header: { key: string; value: string };
  append_action: typeof OVERWRITE | typeof APPEND;
}
interface CheckResponseWire {
  status: { code: number; message?: string };
  denied_response?: {
    status: { code: DeniedStatus };
    headers: HeaderOptionWire[];
    body: string;
  };
  ok_response?: {
    headers: HeaderOptionWire[];
    headers_to_remove: string[];
    response_headers_to_add: HeaderOptionWire[];
  };
}

/** HTTP statuses of a denied response, by Envoy's enum names. */
type DeniedStatus =
  'BadRequest' | 'PaymentRequired' | 'Forbidden' | 'ServiceUnavailable';

type Answer =
  { response: CheckResponseWire } | { error: Partial<grpc.StatusObject> };
/** An answer as sent: the encoded CheckResponse, or an RPC error. */
type Encoded = { bytes: Buffer } | { error: Partial<grpc.StatusObject> };

/** Options for {@link createExtAuthzService}. */
export interface ExtAuthzServiceOptions {
  /** The core's decision entry point; the only part of the core used. */
  decider: Decider;
  /** Logger; every line about a check carries its `reqId`. */
  logger: Logger;
  /** Called once per decision, for metrics. */
  observe?: DecisionObserver;
  /**
   * The decision log, shared by every listener of the process. Default
   * one of this listener's own, with the default policy and limit.
   */
  decisionLog?: DecisionObserver;
}

/** A service to pass to `grpc.Server.addService`. */
export interface ExtAuthzService {
  /** `envoy.service.auth.v3.Authorization` as loaded from `proto/`. */
  definition: grpc.ServiceDefinition;
  /** The Check handler. It never throws and never rejects. */
  implementation: grpc.UntypedServiceImplementation;
  /** Resolves once no check is being decided or answered. */
  idle(): Promise<void>;
  /**
   * Every connection is about to be closed. An answer to a payment whose
   * call has not ended cannot arrive now, nor can one decided from now on
   * (not sent): the payment stays owed to the same token.
   */
  cutOff(): void;
}

/** Builds the `envoy.service.auth.v3.Authorization` service. */
export function createExtAuthzService(
  options: ExtAuthzServiceOptions,
): ExtAuthzService {
  const packageDefinition = protoLoader.loadSync(
    'envoy/service/auth/v3/external_auth.proto',
    {
      includeDirs: [PROTO_DIR],
      keepCase: true,
      enums: String,
      defaults: false,
    },
  );
  const loaded = packageDefinition[
    'envoy.service.auth.v3.Authorization'
  ] as grpc.ServiceDefinition;
  const decisions = options.decisionLog ?? createDecisionLog(options.logger);

  // Answers are encoded as they are rendered, so the answer to a constant
  // (frozen) decision of the core is encoded once: protobuf encoding was
  // a large part of a refusal. grpc-js then sends the bytes as they are.
  //
  // Requests are decoded by the handler, not by grpc-js as they arrive:
  // grpc-js holds a unary call's request until the client ends its stream,
  // and a decoded CheckRequest can be 35 times its bytes (a 255 KiB one of
  // empty header entries held 8.7 MB), so 100 streams left open on one
  // connection held a gigabyte; held as bytes, about a tenth of that.
  const method = loaded['Check']!;
  const definition: grpc.ServiceDefinition = {
    ...loaded,
    Check: {
      ...method,
      requestDeserialize: (bytes: Buffer) => bytes,
      responseSerialize: (bytes: Buffer) => bytes,
    },
  };
  const decode = method.requestDeserialize as (
    bytes: Buffer,
  ) => CheckRequestWire;
  // Allows are kept in two variants: one also removes Authorization from
  // the upstream request, when it carried Paygress's credential.
  const constant = new WeakMap<Decision, Encoded>();
  const constantStripped = new WeakMap<Decision, Encoded>();
  const running = new InFlight();
  let cut = false;
  // Answers to payments handed to grpc-js whose calls have not ended: the
  // status goes out only after the message is written, a loop turn or
  // more later, and a connection closed meanwhile loses both.
  const unfinished = new Set<() => void>();
  const answer = (
    decision: Decision,
    reqId: string,
    stripAuthorization: boolean,
  ): Encoded =>
    renderOnce(
      stripAuthorization ? constantStripped : constant,
      decision,
      (d) => {
        const rendered = render(d, stripAuthorization, (header, bytes) =>
          options.logger.warn(
            { reqId, header, bytes },
            'header left out: value unsendable',
          ),
        );
        return 'error' in rendered
          ? rendered
          : { bytes: method.responseSerialize(rendered.response) };
      },
    );

  // Everything runs inside this async function, so a malformed request
  // or a bug in the decider ends as UNAVAILABLE, never as a crash or an
  // allow. One function, not a chain of promise callbacks: fewer promises
  // per call.
  const answerCheck = async (
    call: grpc.ServerUnaryCall<Buffer, Buffer>,
    callback: grpc.sendUnaryData<Buffer>,
  ): Promise<void> => {
    const started = performance.now();
    let request: AuthRequest = TCP_REQUEST;
    let decision: Decision;
    let answered = false;
    let wire: CheckRequestWire;
    try {
      wire = decode(call.request);
    } catch {
      // As grpc-js answered a request it could not decode; no decision.
      callback(UNDECODABLE);
      return;
    }
    try {
      const http = authRequestOf(wire);
      if (http === undefined) {
        request = { ...TCP_REQUEST, requestId: newRequestId() };
        decision = notHttp();
      } else {
        request = http;
        decision = await options.decider.decide(http);
      }
    } catch (err) {
      decision = internal(err);
    }
    const lost = deliversPayment(decision)
      ? () =>
          reportUndelivered(
            options.decider,
            decision,
            options.logger,
            request.requestId,
          )
      : undefined;
    let owed = false;
    try {
      const duration = performance.now() - started;
      decisions(request, decision, duration);
      options.observe?.(request, decision, duration);
      // Envoy gave up (its timeout), or shutdown cut the call: the answer
      // to a payment goes nowhere, so the payment stays owed.
      if (lost !== undefined && (call.cancelled || cut)) {
        owed = true;
        lost();
        if (cut) {
          answered = true;
          return callback(SHUTTING_DOWN);
        }
      }
      // Envoy's timer started before grpc-js's copy of it (the request's
      // way here, our event loop), and a late answer is dropped with no
      // sign grpc-js can give: a paid allow ready this close to the
      // deadline goes out, and the payment stays owed too, once (see
      // Decider.sentLate). At worst the payer's retry gets its request a
      // second time; the payer never loses it. Not a refund or credit:
      // kept owed, the refund would be the payer's and the payment too.
      if (
        lost !== undefined &&
        !owed &&
        decision.kind === 'allow' &&
        nearDeadline(call)
      ) {
        owed = reportSentLate(
          options.decider,
          decision,
          options.logger,
          request.requestId,
          `paid answer ready less than ${LATE_ANSWER_MS} ms before the caller's deadline`,
        );
      }
      const result = answer(
        decision,
        request.requestId,
        decision.kind === 'allow' && carriesPaygressCredential(request.headers),
      );
      if (lost !== undefined && !owed) {
        unfinished.add(lost);
        // grpc-js emits this when the call ends, answered or not.
        call.once('cancelled', () => unfinished.delete(lost));
      }
      answered = true;
      if ('error' in result) callback(result.error);
      else callback(null, result.bytes);
    } catch (err) {
      logError(
        options.logger,
        { err, reqId: request.requestId },
        'check answer failed',
      );
      if (answered) return;
      // A payment whose answer could not be made is owed, and Envoy is
      // told at once instead of waiting out its timeout.
      if (lost !== undefined && !owed) {
        unfinished.delete(lost);
        lost();
      }
      callback(ANSWER_FAILED);
    }
  };
  const check: grpc.handleUnaryCall<Buffer, Buffer> = (call, callback) =>
    running.track(answerCheck(call, callback));

  return {
    definition,
    implementation: { Check: check },
    idle: () => running.idle(),
    cutOff: () => {
      cut = true;
      for (const lost of unfinished) lost();
      unfinished.clear();
    },
  };
}

/** The answer to a request that is no CheckRequest. */
const UNDECODABLE: Partial<grpc.StatusObject> = Object.freeze({
  code: grpc.status.INVALID_ARGUMENT,
  details: 'the request is not a CheckRequest (protobuf decoding failed)',
});

/** The answer to a check whose answer could not be made: our fault. */
const ANSWER_FAILED: Partial<grpc.StatusObject> = Object.freeze({
  code: grpc.status.UNAVAILABLE,
  details: 'internal error while answering; the operator has the details',
});

/** The answer to a payment decided as shutdown closes the connections. */
const SHUTTING_DOWN: Partial<grpc.StatusObject> = Object.freeze({
  code: grpc.status.UNAVAILABLE,
  details: 'Paygress is shutting down; send the same token again',
});

/** Reports a header left out of a response, by name and size. */
type Dropped = (header: string, bytes: number) => void;

/** Stands in for the request of a check that carried no HTTP. */
const TCP_REQUEST: AuthRequest = {
  protocol: 'ext-authz',
  method: '',
  scheme: '',
  host: '',
  path: '',
  query: '',
  headers: {},
  clientAddress: '',
  requestId: '',
};

/**
 * Istio sends TCP traffic through the same provider: there is no HTTP
 * response to carry a price, so it is refused plainly (403 below).
 */
function notHttp(): Deny {
  const error = new NotHttpError('the check carried no HTTP request');
  return {
    kind: 'deny',
    reason: error.code,
    message: error.message,
    fault: error.fault,
  };
}

/** A decider that throws has a bug: fail closed, as our fault. */
function internal(err: unknown): Deny {
  const error = toPaygressError(err);
  return {
    kind: 'deny',
    reason: error.code,
    message: error.message,
    fault: 'ours',
  };
}

function render(
  decision: Decision,
  stripAuthorization: boolean,
  log: Dropped,
): Answer {
  if (decision.kind === 'allow') {
    return { response: renderAllow(decision, stripAuthorization, log) };
  }
  // A refund or a credit is the payer's money: it must reach them, so it
  // rides on a denied response (503), never on an RPC error, for which
  // Envoy would answer with a response of its own.
  if (decision.fault === 'ours' && !handsMoneyBack(decision)) {
    return {
      error: {
        code: grpc.status.UNAVAILABLE,
        details: `${decision.reason}: ${decision.message}`,
      },
    };
  }
  const status: DeniedStatus =
    decision.fault === 'ours'
      ? 'ServiceUnavailable'
      : decision.reason === 'PAYGRESS_NOT_HTTP'
        ? 'Forbidden'
        : isBadPayment(decision)
          ? 'BadRequest'
          : 'PaymentRequired';
  return { response: renderDeny(decision, status, log) };
}

function authRequestOf(
  check: CheckRequestWire | undefined,
): AuthRequest | undefined {
  const http = check?.attributes?.request?.http;
  if (http === undefined || http === null) return undefined;

  const headers = headersOf(http);
  // Envoy's path is the request target with its query; a raw `#` left in
  // it is refused by pricing, as through every adapter.
  const { path, query } = splitUri(http.path || headers[':path']);

  return {
    protocol: 'ext-authz',
    method: http.method || headers[':method'] || '',
    scheme: (http.scheme || headers[':scheme'] || '').toLowerCase(),
    host: hostOnly(http.host || headers[':authority']),
    path,
    query,
    headers,
    clientAddress:
      check?.attributes?.source?.address?.socket_address?.address ?? '',
    requestId: requestIdFrom(http.id || headers['x-request-id']),
  };
}

function headersOf(http: HttpRequestWire): Record<string, string> {
  // No prototype: names such as `__proto__` stay plain data.
  const joined: Record<string, string> = Object.create(null);
  const add = (key: string | undefined, value: string) => {
    const name = (key ?? '').toLowerCase();
    if (name === '') return;
    const previous = joined[name];
    joined[name] = previous === undefined ? value : `${previous},${value}`;
  };

  // With encode_raw_headers Envoy fills header_map (raw_value bytes,
  // repeated names kept apart) and leaves the string map empty.
  const raw = http.header_map?.headers;
  if (raw !== undefined && raw.length > 0) {
    for (const h of raw) {
      add(
        h.key,
        h.raw_value?.length ? UTF8.decode(h.raw_value) : (h.value ?? ''),
      );
    }
  } else {
    const map = http.headers ?? {};
    for (const key in map) add(key, map[key] ?? '');
  }
  return joined;
}

function renderAllow(
  allow: Allow,
  stripAuthorization: boolean,
  log: Dropped,
): CheckResponseWire {
  const upstream = headerOptions(allow.upstreamHeaders, log);
  const client = headerOptions(allow.clientHeaders, log);

  // Overwriting replaces any client-sent copy of our headers; a header of
  // ours too long to send is removed instead, so no client copy survives.
  // The credential the request paid or came with (a token in X-Cashu or
  // Authorization, a grant in Authorization) is no business of the
  // upstream's either.
  const credentials = stripAuthorization
    ? ['x-cashu', 'authorization']
    : ['x-cashu'];
  // An empty value overwrites a client's copy only while Envoy keeps empty
  // values: removing the header as well holds either way.
  const empty = upstream.options
    .filter((option) => option.header.value === '')
    .map((option) => option.header.key);
  return {
    status: { code: grpc.status.OK },
    ok_response: {
      headers: upstream.options,
      headers_to_remove: [...credentials, ...upstream.dropped, ...empty],
      response_headers_to_add: client.options,
    },
  };
}

function renderDeny(
  deny: Deny,
  httpStatus: DeniedStatus,
  log: Dropped,
): CheckResponseWire {
  const headers: Record<string, string> = {
    ...denyHeaders(deny),
    'content-type': 'application/json',
    // As the HTTP adapters answer: a refusal, with a payment request or
    // a refund in it, is no answer for a cache to keep.
    'cache-control': 'no-store',
  };
  if (deny.fault === 'ours') headers['retry-after'] = '5';
  return {
    status: { code: grpc.status.PERMISSION_DENIED, message: deny.reason },
    denied_response: {
      status: { code: httpStatus },
      headers: headerOptions(headers, log).options,
      body: denyBody(deny),
    },
  };
}

/** Whether the call's deadline is less than {@link LATE_ANSWER_MS} away. */
function nearDeadline(call: grpc.ServerUnaryCall<Buffer, Buffer>): boolean {
  const deadline = call.getDeadline();
  const at = deadline instanceof Date ? deadline.getTime() : deadline;
  return Number.isFinite(at) && at - Date.now() < LATE_ANSWER_MS;
}

function headerOptions(
  headers: Readonly<Record<string, string>>,
  log: Dropped,
): { options: HeaderOptionWire[]; dropped: string[] } {
  const options = new Map<string, HeaderOptionWire>();
  const dropped: string[] = [];
  for (const [name, value] of Object.entries(headers)) {
    const key = name.toLowerCase();
    if (
      Buffer.byteLength(value) > MAX_HEADER_VALUE_BYTES ||
      UNSENDABLE_VALUE.test(value)
    ) {
      // Envoy would reject the whole response for this one value.
      log(key, Buffer.byteLength(value));
      dropped.push(key);
      continue;
    }
    options.set(key, {
      header: { key, value },
      append_action: key === 'set-cookie' ? APPEND : OVERWRITE,
    });
  }
  return { options: [...options.values()], dropped };
}
