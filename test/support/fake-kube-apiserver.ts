/**
 * A Kubernetes API server for tests, on 127.0.0.1, that serves the pod
 * calls Paygress makes the way the published API does: the same paths,
 * patch content types, `Status` bodies, resourceVersion preconditions and
 * validation of the fields a kubelet would need. It also answers the
 * discovery calls kubectl makes, so kubectl can act as a second client.
 * Knobs let a test deny a verb, slow every answer, or take the port down.
 */
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { stringify } from 'yaml';

// Loosely typed on purpose: the server stores whatever JSON it is sent.
type Json = any;

/** One request as the server saw it. */
export interface RecordedRequest {
  readonly method: string;
  /** Path and query, as sent. */
  readonly path: string;
  readonly contentType: string | undefined;
}

type Pod = Record<string, any>;

class HttpError extends Error {
  readonly code: number;
  readonly reason: string;
  readonly details: Json | undefined;
  constructor(code: number, reason: string, message: string, details?: Json) {
    super(message);
    this.code = code;
    this.reason = reason;
    this.details = details;
  }
}

/** Options of {@link FakeKubeApiServer.start}. */
export interface FakeKubeApiServerOptions {
  /**
   * Serve requests that carry no credentials, as an API server with
   * anonymous auth enabled does; a wrong token is still refused. kubectl
   * needs this: it does not send a bearer token over plain HTTP.
   * Default false.
   */
  readonly anonymous?: boolean;
}

/** The fake API server; create with {@link FakeKubeApiServer.start}. */
export class FakeKubeApiServer {
  /** Bearer token every request must carry. */
  readonly token = `fake-${randomUUID()}`;
  /** Every request received, in order (knobs never clear it). */
  readonly requests: RecordedRequest[] = [];
  readonly #pods = new Map<string, Pod>();
  readonly #forbidden = new Set<string>();
  readonly #timers = new Set<NodeJS.Timeout>();
  #server: http.Server | undefined;
  #port = 0;
  #rv = 0;
  #delayMs = 0;
  #delayMethod: string | undefined;
  #mangleList: ((items: Pod[]) => Json) | undefined;
  readonly #anonymous: boolean;

  private constructor(anonymous: boolean) {
    this.#anonymous = anonymous;
  }

  /** Starts listening on 127.0.0.1 on an ephemeral port. */
  static async start(
    options: FakeKubeApiServerOptions = {},
  ): Promise<FakeKubeApiServer> {
    const server = new FakeKubeApiServer(options.anonymous ?? false);
    await server.up();
    return server;
  }

  /** Base URL, e.g. `http://127.0.0.1:41234`. */
  get url(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  /** Answers 403 Forbidden to `verb` (get, list, create, patch, delete, watch) on pods. */
  forbid(verb: string): void {
    this.#forbidden.add(verb);
  }

  /** Lifts a {@link forbid}; with no verb, lifts all. */
  allow(verb?: string): void {
    if (verb === undefined) this.#forbidden.clear();
    else this.#forbidden.delete(verb);
  }

  /**
   * Passes the items of every list answer through `edit` first, as a
   * faulty proxy in front of the API server would; undefined stops it.
   */
  mangleList(edit: ((items: Pod[]) => Json) | undefined): void {
    this.#mangleList = edit;
  }

  /**
   * Holds every answer back by `ms` milliseconds (0 turns it off), or only
   * the answers to one HTTP `method`.
   */
  delay(ms: number, method?: string): void {
    this.#delayMs = ms;
    this.#delayMethod = method;
  }

  /** Stops listening and drops every open connection. */
  async down(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = undefined;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    const closed = new Promise<void>((resolve) =>
      server.close(() => resolve()),
    );
    server.closeAllConnections();
    await closed;
  }

  /** Listens again, on the same port once one was assigned. */
  async up(): Promise<void> {
    if (this.#server) return;
    const server = http.createServer((req, res) => void this.#handle(req, res));
    server.keepAliveTimeout = 1000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#port, '127.0.0.1', () => resolve());
    });
    this.#port = (server.address() as AddressInfo).port;
    this.#server = server;
  }

  /** Shuts the server down for good. */
  async close(): Promise<void> {
    await this.down();
  }

  /**
   * Sets a pod's status as the kubelet would, e.g. `Failed` with reason
   * `DeadlineExceeded` once `activeDeadlineSeconds` has passed.
   */
  setStatus(
    namespace: string,
    name: string,
    status: { phase: string; reason?: string },
  ): void {
    const pod = this.#pods.get(key(namespace, name));
    if (pod === undefined) throw new Error(`no pod ${namespace}/${name}`);
    pod.status = { ...status };
    pod.metadata.resourceVersion = String(++this.#rv);
  }

  /** Deletes a pod at once, as `kubectl delete` or a lost node would. */
  remove(namespace: string, name: string): void {
    this.#pods.delete(key(namespace, name));
  }

  /** Copies of the stored pods, optionally of one namespace. */
  pods(namespace?: string): Pod[] {
    return [...this.#pods.values()]
      .filter(
        (p) => namespace === undefined || p.metadata.namespace === namespace,
      )
      .map((p) => structuredClone(p));
  }

  async #handle(
    req: http.IncomingMessage,
    res: http.ServerResponse,
  ): Promise<void> {
    this.requests.push({
      method: req.method ?? '',
      path: req.url ?? '',
      contentType: req.headers['content-type'],
    });
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const { code, value } = this.#answer(req, body);

    // A slow API here is slow on the way back: the request has taken
    // effect when the answer is held, as when a real server's reply is
    // late. A client that gives up must cope with the write having happened.
    const held = this.#delayMethod ?? req.method;
    if (this.#delayMs > 0 && held === req.method) {
      await this.#sleep(this.#delayMs);
    }
    if (res.destroyed || !this.#server) return;
    send(res, code, value);
  }

  #answer(
    req: http.IncomingMessage,
    body: string,
  ): { code: number; value: Json } {
    try {
      const auth = req.headers.authorization;
      const anonymous = auth === undefined && this.#anonymous;
      if (!anonymous && auth !== `Bearer ${this.token}`) {
        throw new HttpError(401, 'Unauthorized', 'Unauthorized');
      }
      return this.#route(
        req.method ?? 'GET',
        req.url ?? '/',
        req.headers['content-type'],
        body,
      );
    } catch (err) {
      if (!(err instanceof HttpError)) throw err;
      return {
        code: err.code,
        value: {
          kind: 'Status',
          apiVersion: 'v1',
          metadata: {},
          status: 'Failure',
          message: err.message,
          reason: err.reason,
          ...(err.details !== undefined && { details: err.details }),
          code: err.code,
        },
      };
    }
  }

  #route(
    method: string,
    rawUrl: string,
    contentType: string | undefined,
    body: string,
  ): { code: number; value: Json } {
    const url = new URL(rawUrl, 'http://fake');
    const parts = url.pathname.split('/').filter(Boolean);
    const path = url.pathname.replace(/\/+$/, '');

    if (method === 'GET' && path === '/version') return ok(VERSION);
    if (method === 'GET' && path === '/api') return ok(apiVersions(this.url));
    if (method === 'GET' && path === '/apis')
      return ok({ kind: 'APIGroupList', apiVersion: 'v1', groups: [] });
    if (method === 'GET' && path === '/api/v1') return ok(RESOURCES);
    if (method === 'GET' && path === '/api/v1/pods')
      return this.#list(undefined, url);

    const [api, v1, nsWord, ns, pods, name, ...rest] = parts;
    // Every namespace exists here; kubectl reads one to word a NotFound.
    if (
      method === 'GET' &&
      api === 'api' &&
      nsWord === 'namespaces' &&
      ns &&
      pods === undefined
    ) {
      return ok({
        kind: 'Namespace',
        apiVersion: 'v1',
        metadata: { name: ns },
        spec: { finalizers: ['kubernetes'] },
        status: { phase: 'Active' },
      });
    }
    if (
      api !== 'api' ||
      v1 !== 'v1' ||
      nsWord !== 'namespaces' ||
      !ns ||
      pods !== 'pods' ||
      rest.length > 0
    ) {
      throw new HttpError(
        404,
        'NotFound',
        'the server could not find the requested resource',
        {},
      );
    }
    if (name === undefined) {
      if (method === 'GET') return this.#list(ns, url);
      if (method === 'POST') return this.#create(ns, body);
    } else {
      if (method === 'GET') return ok(this.#get(ns, name, 'get'));
      if (method === 'PATCH') return this.#patch(ns, name, contentType, body);
      if (method === 'DELETE') return this.#delete(ns, name, body);
    }
    throw new HttpError(
      405,
      'MethodNotAllowed',
      `the server does not allow this method on the requested resource`,
      {},
    );
  }

  #list(ns: string | undefined, url: URL): { code: number; value: Json } {
    const verb = url.searchParams.get('watch') === 'true' ? 'watch' : 'list';
    this.#authorize(verb, ns);
    if (verb === 'watch') {
      throw new HttpError(
        405,
        'MethodNotAllowed',
        'this server does not implement watch',
        {},
      );
    }
    const labels = parseSelector(
      url.searchParams.get('labelSelector') ?? '',
      badRequest,
    );
    const fields = parseFieldSelector(
      url.searchParams.get('fieldSelector') ?? '',
    );

    const items = this.pods(ns)
      .filter((p) => matches(labels, p.metadata.labels ?? {}))
      .filter((p) =>
        fields.every(
          ([field, op, value]) =>
            (fieldValue(p, field) === value) === (op !== '!='),
        ),
      )
      .sort((a, b) =>
        key(a.metadata.namespace, a.metadata.name).localeCompare(
          key(b.metadata.namespace, b.metadata.name),
        ),
      );
    return ok({
      kind: 'PodList',
      apiVersion: 'v1',
      metadata: { resourceVersion: String(this.#rv) },
      items: this.#mangleList ? this.#mangleList(items) : items,
    });
  }

  #create(ns: string, body: string): { code: number; value: Json } {
    this.#authorize('create', ns);
    const pod = parseBody(body) as Pod;
    if (pod.kind !== undefined && pod.kind !== 'Pod')
      badRequest(`expected kind Pod, got ${String(pod.kind)}`);
    pod.metadata ??= {};
    if (pod.metadata.namespace !== undefined && pod.metadata.namespace !== ns) {
      badRequest(
        'the namespace of the provided object does not match the namespace sent on the request',
      );
    }
    if (!pod.metadata.name && pod.metadata.generateName) {
      pod.metadata.name = `${pod.metadata.generateName}${randomUUID().slice(0, 5)}`;
    }
    invalidIfAny(pod);
    if (this.#pods.has(key(ns, pod.metadata.name))) {
      throw new HttpError(
        409,
        'AlreadyExists',
        `pods "${pod.metadata.name}" already exists`,
        { name: pod.metadata.name, kind: 'pods' },
      );
    }

    const stored: Pod = {
      ...pod,
      kind: 'Pod',
      apiVersion: 'v1',
      metadata: {
        ...pod.metadata,
        namespace: ns,
        uid: randomUUID(),
        resourceVersion: String(++this.#rv),
        creationTimestamp: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
      },
      status: { phase: 'Pending' },
    };
    this.#pods.set(key(ns, pod.metadata.name), stored);
    return { code: 201, value: structuredClone(stored) };
  }

  #get(ns: string, name: string, verb: string): Pod {
    this.#authorize(verb, ns, name);
    const pod = this.#pods.get(key(ns, name));
    if (!pod)
      throw new HttpError(404, 'NotFound', `pods "${name}" not found`, {
        name,
        kind: 'pods',
      });
    return pod;
  }

  #patch(
    ns: string,
    name: string,
    contentType: string | undefined,
    body: string,
  ): { code: number; value: Json } {
    const current = this.#get(ns, name, 'patch');
    const type = (contentType ?? '').split(';')[0]!.trim();
    const patch = parseBody(body);
    const next = applyPatch(
      type,
      structuredClone(current),
      patch,
      (message) => {
        if (message.startsWith('unsupported')) {
          throw new HttpError(
            415,
            'UnsupportedMediaType',
            `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json`,
            {},
          );
        }
        throw new HttpError(422, 'Invalid', message, { name, kind: 'Pod' });
      },
    ) as Pod;

    // The object's resourceVersion, if the patch carried one, is an
    // optimistic-concurrency precondition, as on a real API server.
    if (next.metadata?.resourceVersion !== current.metadata.resourceVersion) {
      throw conflict(
        name,
        'the object has been modified; please apply your changes to the latest version and try again',
      );
    }
    checkUpdate(current, next);
    next.status = current.status;
    if (JSON.stringify(next) === JSON.stringify(current))
      return ok(structuredClone(current));

    next.metadata.resourceVersion = String(++this.#rv);
    this.#pods.set(key(ns, name), next);
    return ok(structuredClone(next));
  }

  #delete(
    ns: string,
    name: string,
    body: string,
  ): { code: number; value: Json } {
    const pod = this.#get(ns, name, 'delete');
    const options = body.trim() === '' ? {} : (parseBody(body) as Pod);
    const pre = options.preconditions ?? {};
    if (pre.uid !== undefined && pre.uid !== pod.metadata.uid) {
      throw conflict(
        name,
        `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${pod.metadata.uid}`,
      );
    }
    if (
      pre.resourceVersion !== undefined &&
      pre.resourceVersion !== pod.metadata.resourceVersion
    ) {
      throw conflict(
        name,
        `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${pod.metadata.resourceVersion}`,
      );
    }

    this.#pods.delete(key(ns, name));
    const gone = structuredClone(pod);
    gone.metadata.resourceVersion = String(++this.#rv);
    gone.metadata.deletionTimestamp = new Date()
      .toISOString()
      .replace(/\.\d+Z$/, 'Z');
    gone.metadata.deletionGracePeriodSeconds = 0;
    return ok(gone);
  }

  #authorize(verb: string, ns: string | undefined, name?: string): void {
    if (!this.#forbidden.has(verb)) return;
    const who = name ? `pods "${name}"` : 'pods';
    const where = ns ? ` in the namespace "${ns}"` : ' at the cluster scope';
    throw new HttpError(
      403,
      'Forbidden',
      `${who} is forbidden: User "system:serviceaccount:paygress:paygress" cannot ${verb} resource "pods" in API group ""${where}`,
      { ...(name && { name }), kind: 'pods' },
    );
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.#timers.delete(t);
        resolve();
      }, ms);
      this.#timers.add(t);
    });
  }
}

/** A client-node KubeConfig for the server: plain HTTP, bearer token. */
export function kubeConfigFor(
  server: FakeKubeApiServer,
  namespace = 'default',
): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromString(kubeConfigYaml(server, namespace));
  return kc;
}

/** Writes a kubeconfig file for the server (for kubectl); returns its path. */
export function writeKubeConfig(
  server: FakeKubeApiServer,
  path: string,
  namespace = 'default',
): string {
  writeFileSync(path, kubeConfigYaml(server, namespace), { mode: 0o600 });
  return path;
}

function kubeConfigYaml(server: FakeKubeApiServer, namespace: string): string {
  // client-node refuses plain http unless TLS verification is switched
  // off explicitly; there is no TLS here to verify.
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      {
        name: 'fake',
        cluster: { server: server.url, 'insecure-skip-tls-verify': true },
      },
    ],
    users: [{ name: 'fake', user: { token: server.token } }],
    contexts: [
      { name: 'fake', context: { cluster: 'fake', user: 'fake', namespace } },
    ],
    'current-context': 'fake',
  });
}

const VERSION = {
  major: '1',
  minor: '32',
  gitVersion: 'v1.32.0-fake',
  gitCommit: '0000000000000000000000000000000000000000',
  gitTreeState: 'clean',
  buildDate: '2025-01-01T00:00:00Z',
  goVersion: 'go1.23',
  compiler: 'gc',
  platform: 'linux/amd64',
};

const RESOURCES = {
  kind: 'APIResourceList',
  apiVersion: 'v1',
  groupVersion: 'v1',
  resources: [
    {
      name: 'pods',
      singularName: 'pod',
      namespaced: true,
      kind: 'Pod',
      verbs: ['create', 'delete', 'get', 'list', 'patch'],
      shortNames: ['po'],
      categories: ['all'],
    },
    {
      name: 'namespaces',
      singularName: 'namespace',
      namespaced: false,
      kind: 'Namespace',
      verbs: ['get', 'list'],
      shortNames: ['ns'],
    },
  ],
};

function apiVersions(url: string): Json {
  return {
    kind: 'APIVersions',
    versions: ['v1'],
    serverAddressByClientCIDRs: [
      { clientCIDR: '0.0.0.0/0', serverAddress: new URL(url).host },
    ],
  };
}

function checkUpdate(current: Pod, next: Pod): void {
  for (const field of [
    'name',
    'namespace',
    'uid',
    'creationTimestamp',
  ] as const) {
    if (next.metadata?.[field] !== current.metadata[field]) {
      invalid(
        current.metadata.name,
        `metadata.${field}`,
        'FieldValueInvalid',
        `Invalid value: ${JSON.stringify(next.metadata?.[field])}: field is immutable`,
      );
    }
  }
  const was = current.spec.activeDeadlineSeconds;
  const now = next.spec?.activeDeadlineSeconds;
  if (was !== undefined && (now === undefined || now > was)) {
    invalid(
      current.metadata.name,
      'spec.activeDeadlineSeconds',
      'FieldValueInvalid',
      `Invalid value: ${String(now ?? 'null')}: must be less than or equal to previous value`,
    );
  }
  // Apart from images and the deadline, a pod's spec cannot change.
  const frozen = (spec: Pod) =>
    JSON.stringify({
      ...spec,
      activeDeadlineSeconds: undefined,
      containers: (spec?.containers ?? []).map((c: Pod) => ({
        ...c,
        image: undefined,
      })),
    });
  if (frozen(next.spec) !== frozen(current.spec)) {
    invalid(
      current.metadata.name,
      'spec',
      'FieldValueForbidden',
      'Forbidden: pod updates may not change fields other than `spec.containers[*].image`, `spec.activeDeadlineSeconds`',
    );
  }
  invalidIfAny(next);
}

function invalidIfAny(pod: Pod): void {
  const causes = validatePod(pod);
  if (causes.length === 0) return;
  const text = causes.map((c) => `${c.field}: ${c.message}`);
  const name = String(pod.metadata?.name ?? '');
  throw new HttpError(
    422,
    'Invalid',
    `Pod "${name}" is invalid: ${text.length === 1 ? text[0] : `[${text.join(', ')}]`}`,
    { name, kind: 'Pod', causes },
  );
}

function invalid(
  name: string,
  field: string,
  reason: string,
  message: string,
): never {
  throw new HttpError(
    422,
    'Invalid',
    `Pod "${name}" is invalid: ${field}: ${message}`,
    { name, kind: 'Pod', causes: [{ reason, message, field }] },
  );
}

function conflict(name: string, why: string): HttpError {
  return new HttpError(
    409,
    'Conflict',
    `Operation cannot be fulfilled on pods "${name}": ${why}`,
    { name, kind: 'pods' },
  );
}

function badRequest(message: string): never {
  throw new HttpError(400, 'BadRequest', message);
}

function parseBody(body: string): Json {
  try {
    return JSON.parse(body) as Json;
  } catch {
    return badRequest('the request body is not valid JSON');
  }
}

function parseFieldSelector(text: string): Array<[string, string, string]> {
  if (text.trim() === '') return [];
  return text.split(',').map((term) => {
    const m = /^\s*([a-zA-Z.]+)\s*(==|=|!=)\s*(.*?)\s*$/.exec(term);
    if (
      !m ||
      !['metadata.name', 'metadata.namespace', 'status.phase'].includes(m[1]!)
    ) {
      return badRequest(`field label not supported: ${term}`);
    }
    return [m[1]!, m[2]!, m[3]!];
  });
}

function fieldValue(pod: Pod, field: string): unknown {
  return field === 'status.phase'
    ? pod.status?.phase
    : pod.metadata[field.slice('metadata.'.length)];
}

function key(ns: string, name: string): string {
  return `${ns}/${name}`;
}

function ok(value: Json): { code: number; value: Json } {
  return { code: 200, value };
}

function send(res: http.ServerResponse, code: number, value: Json): void {
  const text = JSON.stringify(value);
  res.writeHead(code, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

// ---- The API's rules: validation, label selectors, patch formats ----

interface Cause {
  reason: string;
  message: string;
  field: string;
}

const SUBDOMAIN =
  /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const QUALIFIED = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/** The checks the API applies to the pod fields Paygress sets. */
function validatePod(pod: Pod): Cause[] {
  const causes: Cause[] = [];
  const required = (field: string) =>
    causes.push({
      reason: 'FieldValueRequired',
      message: 'Required value',
      field,
    });
  const bad = (field: string, value: unknown, why: string) =>
    causes.push({
      reason: 'FieldValueInvalid',
      message: `Invalid value: ${JSON.stringify(value)}: ${why}`,
      field,
    });

  const name = pod.metadata?.name;
  if (!name) required('metadata.name');
  else if (
    typeof name !== 'string' ||
    name.length > 253 ||
    !SUBDOMAIN.test(name)
  ) {
    bad(
      'metadata.name',
      name,
      "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
    );
  }
  for (const [k, v] of Object.entries(pod.metadata?.labels ?? {})) {
    if (!validKey(k))
      bad(
        'metadata.labels',
        k,
        "name part must consist of alphanumeric characters, '-', '_' or '.' (63 characters at most), with an optional DNS subdomain prefix and '/'",
      );
    if (typeof v !== 'string' || v.length > 63 || !LABEL_VALUE.test(v))
      bad(
        'metadata.labels',
        v,
        "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.' (63 characters at most)",
      );
  }
  for (const [k, v] of Object.entries(pod.metadata?.annotations ?? {})) {
    if (!validKey(k)) bad('metadata.annotations', k, 'invalid annotation key');
    if (typeof v !== 'string')
      bad(`metadata.annotations[${k}]`, v, 'must be a string');
  }

  const containers = pod.spec?.containers;
  if (!Array.isArray(containers) || containers.length === 0)
    required('spec.containers');
  const seen = new Set<string>();
  for (const [i, c] of (Array.isArray(containers)
    ? containers
    : []
  ).entries()) {
    if (!c?.name) required(`spec.containers[${i}].name`);
    else if (
      typeof c.name !== 'string' ||
      c.name.length > 63 ||
      !DNS_LABEL.test(c.name)
    )
      bad(
        `spec.containers[${i}].name`,
        c.name,
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'",
      );
    else if (seen.has(c.name))
      causes.push({
        reason: 'FieldValueDuplicate',
        message: `Duplicate value: ${JSON.stringify(c.name)}`,
        field: `spec.containers[${i}].name`,
      });
    if (typeof c?.name === 'string') seen.add(c.name);
    if (typeof c?.image !== 'string' || c.image.trim() === '')
      required(`spec.containers[${i}].image`);
  }
  const deadline = pod.spec?.activeDeadlineSeconds;
  if (
    deadline !== undefined &&
    (!Number.isInteger(deadline) || deadline < 1 || deadline > 2147483647)
  ) {
    bad(
      'spec.activeDeadlineSeconds',
      deadline,
      'must be between 1 and 2147483647, inclusive',
    );
  }
  return causes;
}

function validKey(k: string): boolean {
  const slash = k.lastIndexOf('/');
  const prefix = slash >= 0 ? k.slice(0, slash) : undefined;
  const name = slash >= 0 ? k.slice(slash + 1) : k;
  if (prefix !== undefined && (prefix.length > 253 || !SUBDOMAIN.test(prefix)))
    return false;
  return name.length <= 63 && QUALIFIED.test(name);
}

type Requirement =
  | { key: string; op: 'exists' | '!exists' }
  | { key: string; op: 'in' | 'notin'; values: string[] };

/** Parses a label selector: `a=b`, `a==b`, `a!=b`, `a`, `!a`, `a in (x,y)`, `a notin (x)`. */
function parseSelector(
  text: string,
  fail: (message: string) => never,
): Requirement[] {
  const terms: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i += 1) {
    if (text[i] === '(') depth += 1;
    if (text[i] === ')') depth -= 1;
    if (text[i] === ',' && depth === 0) {
      terms.push(text.slice(start, i));
      start = i + 1;
    }
  }
  terms.push(text.slice(start));

  const keyRe = '([A-Za-z0-9][-A-Za-z0-9_./]*)';
  return terms
    .map((t) => t.trim())
    .filter(Boolean)
    .map((term): Requirement => {
      let m = new RegExp(`^!\\s*${keyRe}$`).exec(term);
      if (m) return { key: m[1]!, op: '!exists' };
      m = new RegExp(`^${keyRe}\\s+(in|notin)\\s+\\(([^)]*)\\)$`).exec(term);
      if (m)
        return {
          key: m[1]!,
          op: m[2] as 'in' | 'notin',
          values: m[3]!.split(',').map((v) => v.trim()),
        };
      m = new RegExp(`^${keyRe}\\s*(==|=|!=)\\s*([-A-Za-z0-9_.]*)$`).exec(term);
      if (m)
        return {
          key: m[1]!,
          op: m[2] === '!=' ? 'notin' : 'in',
          values: [m[3]!],
        };
      m = new RegExp(`^${keyRe}$`).exec(term);
      if (m) return { key: m[1]!, op: 'exists' };
      return fail(`unable to parse requirement: ${term}`);
    });
}

/** Kubernetes semantics: `!=` and `notin` also match a missing label. */
function matches(reqs: Requirement[], labels: Record<string, string>): boolean {
  return reqs.every((r) => {
    const has = Object.hasOwn(labels, r.key);
    switch (r.op) {
      case 'exists':
        return has;
      case '!exists':
        return !has;
      case 'in':
        return has && r.values.includes(labels[r.key]!);
      case 'notin':
        return !has || !r.values.includes(labels[r.key]!);
    }
  });
}

/** Applies a patch of the given media type (RFC 7386, RFC 6902, or strategic merge). */
function applyPatch(
  type: string,
  target: Json,
  patch: Json,
  fail: (message: string) => never,
): Json {
  switch (type) {
    case 'application/merge-patch+json':
      return mergePatch(target, patch, false);
    case 'application/strategic-merge-patch+json':
      return mergePatch(target, patch, true);
    case 'application/json-patch+json':
      if (!Array.isArray(patch))
        return fail('a JSON patch must be an array of operations');
      return patch.reduce(
        (doc: Json, op: Json) => jsonPatchOp(doc, op, fail),
        target,
      );
    default:
      return fail(`unsupported media type ${type}`);
  }
}

function mergePatch(target: Json, patch: Json, strategic: boolean): Json {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) {
    // Strategic merge of a list of named objects merges by name, the merge
    // key the API declares for containers, env and ports.
    if (
      strategic &&
      Array.isArray(patch) &&
      Array.isArray(target) &&
      patch.every((p) => p?.name !== undefined)
    ) {
      const out = target.map((t) => structuredClone(t));
      for (const p of patch) {
        const i = out.findIndex((t) => t?.name === p.name);
        if (i >= 0) out[i] = mergePatch(out[i], p, true);
        else out.push(p);
      }
      return out;
    }
    return structuredClone(patch);
  }
  const out: Json =
    typeof target === 'object' && target !== null && !Array.isArray(target)
      ? { ...target }
      : {};
  for (const [k, v] of Object.entries(patch)) {
    if (strategic && k.startsWith('$')) continue;
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v, strategic);
  }
  return out;
}

function jsonPatchOp(
  doc: Json,
  op: Json,
  fail: (message: string) => never,
): Json {
  const path = pointer(op?.path, fail);
  const get = (p: string[]) =>
    p.reduce(
      (node: Json, k) => (node === undefined ? undefined : node[k]),
      doc,
    );
  switch (op?.op) {
    case 'test':
      if (JSON.stringify(get(path)) !== JSON.stringify(op.value))
        fail(`the test of ${op.path} failed`);
      return doc;
    case 'add':
    case 'replace': {
      const parent = get(path.slice(0, -1));
      const last = path.at(-1);
      if (last === undefined) return structuredClone(op.value);
      if (typeof parent !== 'object' || parent === null)
        return fail(`doc is missing path: ${op.path}`);
      if (op.op === 'replace' && !(last in parent))
        return fail(`doc is missing key: ${op.path}`);
      if (Array.isArray(parent) && op.op === 'add')
        parent.splice(
          last === '-' ? parent.length : Number(last),
          0,
          structuredClone(op.value),
        );
      else parent[last] = structuredClone(op.value);
      return doc;
    }
    case 'remove': {
      const parent = get(path.slice(0, -1));
      const last = path.at(-1);
      if (
        last === undefined ||
        typeof parent !== 'object' ||
        parent === null ||
        !(last in parent)
      )
        return fail(`doc is missing key: ${op.path}`);
      if (Array.isArray(parent)) parent.splice(Number(last), 1);
      else delete parent[last];
      return doc;
    }
    default:
      return fail(`unsupported JSON patch operation ${JSON.stringify(op?.op)}`);
  }
}

function pointer(path: unknown, fail: (message: string) => never): string[] {
  if (typeof path !== 'string' || (path !== '' && !path.startsWith('/')))
    return fail(`invalid JSON pointer ${JSON.stringify(path)}`);
  return path === ''
    ? []
    : path
        .slice(1)
        .split('/')
        .map((s) => s.replaceAll('~1', '/').replaceAll('~0', '~'));
}
