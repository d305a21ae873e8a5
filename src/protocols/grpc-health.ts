/**
 * The standard gRPC health service (`grpc.health.v1.Health`), so Envoy,
 * Istio and Kubernetes gRPC probes can tell whether Paygress answers
 * checks. Readiness and shutdown flip the status here; Watch streams push
 * every change to the prober at once.
 */
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/** Whether a service answers; `SERVICE_UNKNOWN` is Watch-only. */
export type ServingStatus = 'SERVING' | 'NOT_SERVING';

type WatchedStatus = ServingStatus | 'SERVICE_UNKNOWN';
type HealthRequest = { service?: string };
type HealthResponse = { status: WatchedStatus };
type Watcher = grpc.ServerWritableStream<HealthRequest, HealthResponse>;

const PROTO_DIR = fileURLToPath(new URL('../../proto/', import.meta.url));

/** Longest service name a Check or Watch may ask about, in characters. */
export const MAX_SERVICE_NAME = 256;
/** Watch streams open at once, at most; probers need a handful. */
export const MAX_WATCHERS = 1000;

/** Options for {@link HealthService}. */
export interface HealthServiceOptions {
  /**
   * Service names to report on. The empty name, the server as a whole, is
   * always included. Default: only the empty name.
   */
  services?: readonly string[];
  /** Status every service starts with. Default: `SERVING`. */
  status?: ServingStatus;
}

/**
 * `grpc.health.v1.Health` with settable status. Check on a name that was
 * never registered answers NOT_FOUND, as the protocol asks; Watch on one
 * streams `SERVICE_UNKNOWN` until it is registered.
 */
export class HealthService {
  /** Service definition to pass to `grpc.Server.addService`. */
  readonly definition: grpc.ServiceDefinition;
  /** Handlers to pass to `grpc.Server.addService`. */
  readonly implementation: grpc.UntypedServiceImplementation;

  #statuses = new Map<string, ServingStatus>();
  // Open Watch streams by service name; a name leaves with its last one.
  #watchers = new Map<string, Set<Watcher>>();
  #watching = 0;

  constructor(options: HealthServiceOptions = {}) {
    const status = options.status ?? 'SERVING';
    for (const name of ['', ...(options.services ?? [])]) {
      this.#statuses.set(name, status);
    }

    this.definition = loadHealthDefinition();
    this.implementation = {
      Check: this.#check.bind(this),
      Watch: this.#watch.bind(this),
    };
  }

  /**
   * Sets the status of one service, or of every registered service when
   * `service` is omitted, and tells every watcher of a changed service.
   * An unregistered name becomes registered.
   */
  setStatus(status: ServingStatus, service?: string): void {
    const names =
      service === undefined ? [...this.#statuses.keys()] : [service];
    for (const name of names) {
      const previous = this.#statuses.get(name);
      this.#statuses.set(name, status);
      if (previous !== status) this.#notify(name, status);
    }
  }

  /** Watch streams open now, and how many names they watch. */
  watchStats(): WatchStats {
    return { streams: this.#watching, names: this.#watchers.size };
  }

  /** Current status of a service; `undefined` when it is not registered. */
  getStatus(service = ''): ServingStatus | undefined {
    return this.#statuses.get(service);
  }

  /**
   * Marks every service NOT_SERVING and ends every Watch stream, so a
   * graceful server shutdown is not held open by probers.
   */
  shutdown(): void {
    this.setStatus('NOT_SERVING');
    for (const watchers of this.#watchers.values()) {
      for (const call of watchers) call.end();
    }
    this.#watchers.clear();
    this.#watching = 0;
  }

  #check(
    call: grpc.ServerUnaryCall<HealthRequest, HealthResponse>,
    callback: grpc.sendUnaryData<HealthResponse>,
  ): void {
    const name = call.request.service ?? '';
    if (name.length > MAX_SERVICE_NAME) {
      callback(tooLong());
      return;
    }
    const status = this.#statuses.get(name);
    if (status === undefined) {
      callback({ code: grpc.status.NOT_FOUND, details: 'unknown service' });
      return;
    }
    callback(null, { status });
  }

  #watch(call: Watcher): void {
    const name = call.request.service ?? '';
    if (name.length > MAX_SERVICE_NAME) {
      call.emit('error', tooLong());
      return;
    }
    if (this.#watching >= MAX_WATCHERS) {
      call.emit('error', {
        code: grpc.status.RESOURCE_EXHAUSTED,
        details: `too many Watch streams open (at most ${MAX_WATCHERS})`,
      });
      return;
    }
    let watchers = this.#watchers.get(name);
    if (watchers === undefined) {
      watchers = new Set();
      this.#watchers.set(name, watchers);
    }
    watchers.add(call);
    this.#watching++;

    const forget = () => {
      if (!watchers.delete(call)) return;
      this.#watching--;
      if (watchers.size === 0 && this.#watchers.get(name) === watchers) {
        this.#watchers.delete(name);
      }
    };
    call.on('cancelled', forget);
    call.on('close', forget);

    call.write({ status: this.#statuses.get(name) ?? 'SERVICE_UNKNOWN' });
  }

  #notify(name: string, status: ServingStatus): void {
    for (const call of this.#watchers.get(name) ?? []) call.write({ status });
  }
}

function tooLong(): Partial<grpc.StatusObject> {
  return {
    code: grpc.status.INVALID_ARGUMENT,
    details: `service name longer than ${MAX_SERVICE_NAME} characters`,
  };
}

/** Open Watch streams and the names they watch, for tests and metrics. */
export interface WatchStats {
  readonly streams: number;
  readonly names: number;
}

function loadHealthDefinition(): grpc.ServiceDefinition {
  const packageDefinition = protoLoader.loadSync(
    'grpc/health/v1/health.proto',
    {
      includeDirs: [PROTO_DIR],
      keepCase: true,
      enums: String,
      defaults: false,
    },
  );
  return packageDefinition['grpc.health.v1.Health'] as grpc.ServiceDefinition;
}
