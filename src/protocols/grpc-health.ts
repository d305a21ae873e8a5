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
  #watchers = new Map<string, Set<Watcher>>();

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
  }

  #check(
    call: grpc.ServerUnaryCall<HealthRequest, HealthResponse>,
    callback: grpc.sendUnaryData<HealthResponse>,
  ): void {
    const status = this.#statuses.get(call.request.service ?? '');
    if (status === undefined) {
      callback({ code: grpc.status.NOT_FOUND, details: 'unknown service' });
      return;
    }
    callback(null, { status });
  }

  #watch(call: Watcher): void {
    const name = call.request.service ?? '';
    let watchers = this.#watchers.get(name);
    if (watchers === undefined) {
      watchers = new Set();
      this.#watchers.set(name, watchers);
    }
    watchers.add(call);

    const forget = () => watchers.delete(call);
    call.on('cancelled', forget);
    call.on('close', forget);

    call.write({ status: this.#statuses.get(name) ?? 'SERVICE_UNKNOWN' });
  }

  #notify(name: string, status: ServingStatus): void {
    for (const call of this.#watchers.get(name) ?? []) call.write({ status });
  }
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
