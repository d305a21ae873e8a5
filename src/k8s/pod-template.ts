/**
 * The operator's pod template and the Pod object Paygress builds from it.
 * The template is the only source of pod fields: a payment contributes the
 * grant (hashed into name and label) and the paid-for expiry, nothing else.
 */
import type {
  V1ContainerPort,
  V1EnvVar,
  V1Pod,
  V1ResourceRequirements,
  V1SecurityContext,
} from '@kubernetes/client-node';
import {
  EXPIRES_AT_ANNOTATION,
  LIFETIME_FROM_ANNOTATION,
  GRANT_LABEL,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  formatExpiry,
  grantHash,
  podNameFor,
} from './pod-identity.ts';

/** Name of the single container in every provisioned pod. */
export const CONTAINER_NAME = 'main';

/** What every pod Paygress provisions runs, as the operator configures it. */
export interface PodTemplate {
  /** Container image reference, e.g. `ghcr.io/acme/notebook:1.4`. Required. */
  readonly image: string;
  /** Entrypoint override; default: the image's entrypoint. */
  readonly command?: readonly string[];
  /** Arguments; default: the image's `CMD`. */
  readonly args?: readonly string[];
  /** Environment variables (Kubernetes `EnvVar` form); default: none. */
  readonly env?: readonly V1EnvVar[];
  /** CPU and memory requests and limits; default: none (namespace defaults). */
  readonly resources?: V1ResourceRequirements;
  /** Ports the container exposes; default: none. */
  readonly ports?: readonly V1ContainerPort[];
  /** Extra pod labels. Paygress's own labels cannot be overridden. */
  readonly labels?: Readonly<Record<string, string>>;
  /** Extra pod annotations. The expiry annotation cannot be overridden. */
  readonly annotations?: Readonly<Record<string, string>>;
  /** Container security context; default: none (cluster defaults). */
  readonly securityContext?: V1SecurityContext;
  /**
   * Service account the pod runs as. Default: the namespace's `default`
   * account with its API token NOT mounted, so a payer's workload gets no
   * Kubernetes credentials unless the operator names an account.
   */
  readonly serviceAccountName?: string;
  /**
   * Hard cap on a pod's life in seconds, set as `activeDeadlineSeconds`:
   * the kubelet stops the pod after this long whatever was paid. Kubernetes
   * only lets this value go down, so it is fixed at creation and `extend`
   * never raises it. Default: no cap.
   */
  readonly maxLifetimeSeconds?: number;
}

const DNS1123_SUBDOMAIN =
  /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const RESERVED_LABELS = new Set([MANAGED_BY_LABEL, GRANT_LABEL]);
// A label or annotation key: an optional DNS subdomain prefix and `/`,
// then a name of at most 63 characters.
const KEY_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;

/**
 * Checks a template once, up front, and returns a frozen deep copy, so a
 * bad template fails at startup rather than on the first payment.
 * @throws TypeError naming the offending field.
 */
export function validatePodTemplate(template: PodTemplate): PodTemplate {
  if (typeof template !== 'object' || template === null) {
    throw new TypeError('`template` must be an object (the pod template)');
  }
  if (typeof template.image !== 'string' || !/^\S+$/.test(template.image)) {
    throw new TypeError('`template.image` must be a non-empty image reference');
  }
  checkStrings(template.command, 'command');
  checkStrings(template.args, 'args');

  checkList(template.env, 'env', (v, field) => {
    checkFields(v, field, ENV_VAR);
    if (typeof v.name !== 'string' || v.name === '') {
      throw new TypeError(
        `\`template.${field}.name\` must be a non-empty string`,
      );
    }
  });
  checkList(template.ports, 'ports', (p, field) => {
    checkFields(p, field, CONTAINER_PORT);
    const port = p.containerPort;
    if (
      !Number.isInteger(port) ||
      (port as number) < 1 ||
      (port as number) > 65535
    ) {
      throw new TypeError(
        `\`template.${field}.containerPort\` must be an integer from 1 to 65535`,
      );
    }
  });
  if (template.resources !== undefined) {
    checkFields(template.resources, 'resources', RESOURCES);
    for (const which of ['limits', 'requests'] as const) {
      const amounts: unknown = template.resources[which];
      if (amounts === undefined || amounts === null) continue;
      for (const [name, amount] of Object.entries(
        amounts as Record<string, unknown>,
      )) {
        if (!isQuantity(amount)) {
          throw new TypeError(
            `\`template.resources.${which}.${name}\` must be a Kubernetes quantity, e.g. 500m, 2 or 1Gi`,
          );
        }
      }
    }
  }
  if (template.securityContext !== undefined) {
    checkFields(template.securityContext, 'securityContext', SECURITY_CONTEXT);
    const caps: unknown = template.securityContext.capabilities;
    if (caps !== undefined && caps !== null) {
      checkFields(caps, 'securityContext.capabilities', CAPABILITIES);
    }
  }
  checkLabels(template.labels);
  checkAnnotations(template.annotations);

  const sa = template.serviceAccountName;
  if (
    sa !== undefined &&
    (typeof sa !== 'string' || sa.length > 253 || !DNS1123_SUBDOMAIN.test(sa))
  ) {
    throw new TypeError(
      '`template.serviceAccountName` must be a DNS-1123 name',
    );
  }
  const cap = template.maxLifetimeSeconds;
  if (cap !== undefined && (!Number.isSafeInteger(cap) || cap < 1)) {
    throw new TypeError(
      '`template.maxLifetimeSeconds` must be a positive integer (seconds)',
    );
  }

  return deepFreeze(structuredClone(template));
}

/**
 * Whole seconds of the template's `maxLifetimeSeconds` left at `now` for
 * a pod whose first start was at `from` (ms since epoch); zero or less
 * when used up, undefined without a cap. A started second counts as used:
 * the cap is a limit, and `from` (stamped by the API server, to the
 * second, by its own clock) may lie a little after Paygress's `now` says.
 */
export function lifetimeLeft(
  template: PodTemplate,
  from: number,
  now: number,
): number | undefined {
  const cap = template.maxLifetimeSeconds;
  return cap === undefined ? undefined : cap - Math.ceil((now - from) / 1000);
}

/**
 * The Pod object for one grant: the template's fields, plus Paygress's
 * name, labels and expiry annotation. `expiresAt` is ms since epoch.
 * `lifetime`: for a pod made anew in place of one the cluster stopped,
 * when the first started and the time now (ms since epoch); its
 * `maxLifetimeSeconds` goes on counting from then.
 */
export function buildPod(
  template: PodTemplate,
  grantId: string,
  expiresAt: number,
  lifetime?: { readonly from: number; readonly now: number },
): V1Pod {
  const t = structuredClone(template) as PodTemplate;
  const ownToken = t.serviceAccountName !== undefined;
  const left = lifetime && lifetimeLeft(t, lifetime.from, lifetime.now);
  const deadline =
    left === undefined ? t.maxLifetimeSeconds : Math.max(1, left);

  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: podNameFor(grantId),
      labels: {
        ...t.labels,
        [MANAGED_BY_LABEL]: MANAGED_BY_VALUE,
        [GRANT_LABEL]: grantHash(grantId),
      },
      annotations: {
        ...t.annotations,
        [EXPIRES_AT_ANNOTATION]: formatExpiry(expiresAt),
        ...(lifetime && {
          [LIFETIME_FROM_ANNOTATION]: formatExpiry(lifetime.from),
        }),
      },
    },
    spec: {
      containers: [
        {
          name: CONTAINER_NAME,
          image: t.image,
          ...(t.command && { command: [...t.command] }),
          ...(t.args && { args: [...t.args] }),
          ...(t.env && { env: [...t.env] }),
          ...(t.resources && { resources: t.resources }),
          ...(t.ports && { ports: [...t.ports] }),
          ...(t.securityContext && { securityContext: t.securityContext }),
        },
      ],
      ...(ownToken
        ? { serviceAccountName: t.serviceAccountName }
        : { automountServiceAccountToken: false }),
      ...(deadline !== undefined && { activeDeadlineSeconds: deadline }),
    },
  };
}

/** What a field of a Kubernetes object holds, as the template checks it. */
type FieldKind =
  'string' | 'boolean' | 'integer' | 'strings' | 'mapping' | 'list';

const KIND_WHAT: Record<FieldKind, string> = {
  string: 'a string',
  boolean: 'true or false',
  integer: 'an integer',
  strings: 'a list of strings',
  mapping: 'a mapping',
  list: 'a list',
};

// The fields of the Kubernetes objects a template holds (core/v1): any
// other is refused, since the API server would drop or refuse it only at
// the first payment.
const ENV_VAR: Record<string, FieldKind> = {
  name: 'string',
  value: 'string',
  valueFrom: 'mapping',
};
const CONTAINER_PORT: Record<string, FieldKind> = {
  containerPort: 'integer',
  hostIP: 'string',
  hostPort: 'integer',
  name: 'string',
  protocol: 'string',
};
const RESOURCES: Record<string, FieldKind> = {
  limits: 'mapping',
  requests: 'mapping',
  claims: 'list',
};
const SECURITY_CONTEXT: Record<string, FieldKind> = {
  allowPrivilegeEscalation: 'boolean',
  appArmorProfile: 'mapping',
  capabilities: 'mapping',
  privileged: 'boolean',
  procMount: 'string',
  readOnlyRootFilesystem: 'boolean',
  runAsGroup: 'integer',
  runAsNonRoot: 'boolean',
  runAsUser: 'integer',
  seLinuxOptions: 'mapping',
  seccompProfile: 'mapping',
  windowsOptions: 'mapping',
};
const CAPABILITIES: Record<string, FieldKind> = {
  add: 'strings',
  drop: 'strings',
};

/** A Kubernetes resource quantity: a number, or decimal with a suffix. */
const QUANTITY = /^(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[mkMGTPE]|[KMGTPE]i)?$/;

function isQuantity(value: unknown): boolean {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0;
  return typeof value === 'string' && QUANTITY.test(value);
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function hasKind(value: unknown, kind: FieldKind): boolean {
  switch (kind) {
    case 'string':
      return typeof value === 'string';
    case 'boolean':
      return typeof value === 'boolean';
    case 'integer':
      return Number.isSafeInteger(value);
    case 'strings':
      return Array.isArray(value) && value.every((v) => typeof v === 'string');
    case 'mapping':
      return isMapping(value);
    case 'list':
      return Array.isArray(value);
  }
}

/**
 * Refuses `value` unless it is a mapping of the `known` fields, each of
 * its kind (or null, which Kubernetes takes as unset).
 */
function checkFields(
  value: unknown,
  field: string,
  known: Record<string, FieldKind>,
): asserts value is Record<string, unknown> {
  if (!isMapping(value)) {
    throw new TypeError(`\`template.${field}\` must be a mapping`);
  }
  for (const [key, v] of Object.entries(value)) {
    const kind = Object.hasOwn(known, key) ? known[key] : undefined;
    if (kind === undefined) {
      throw new TypeError(
        `\`template.${field}\` has no field ${JSON.stringify(key)} in Kubernetes: expected ${Object.keys(known).join(', ')}`,
      );
    }
    if (v !== null && !hasKind(v, kind)) {
      throw new TypeError(
        `\`template.${field}.${key}\` must be ${KIND_WHAT[kind]}`,
      );
    }
  }
}

/** Refuses `list` unless it is a list, and checks each item. */
function checkList(
  list: unknown,
  field: string,
  check: (item: unknown, field: string) => void,
): void {
  if (list === undefined) return;
  if (!Array.isArray(list)) {
    throw new TypeError(`\`template.${field}\` must be a list`);
  }
  list.forEach((item, i) => check(item, `${field}[${i}]`));
}

function checkStrings(list: unknown, field: string): void {
  if (list === undefined) return;
  if (!Array.isArray(list) || !list.every((s) => typeof s === 'string')) {
    throw new TypeError(`\`template.${field}\` must be an array of strings`);
  }
}

function checkLabels(labels: unknown): void {
  if (labels === undefined) return;
  if (!isMapping(labels)) {
    throw new TypeError('`template.labels` must be an object of strings');
  }
  for (const [key, value] of Object.entries(labels)) {
    checkKey(key, 'labels');
    if (RESERVED_LABELS.has(key)) {
      throw new TypeError(
        `\`template.labels\` may not set \`${key}\`: Paygress sets it`,
      );
    }
    if (
      typeof value !== 'string' ||
      value.length > 63 ||
      !LABEL_VALUE.test(value)
    ) {
      throw new TypeError(
        `\`template.labels.${key}\` must be a valid label value (63 chars at most)`,
      );
    }
  }
}

function checkAnnotations(annotations: unknown): void {
  if (annotations === undefined) return;
  if (!isMapping(annotations)) {
    throw new TypeError('`template.annotations` must be an object of strings');
  }
  for (const [key, value] of Object.entries(annotations)) {
    checkKey(key, 'annotations');
    if (key === EXPIRES_AT_ANNOTATION || key === LIFETIME_FROM_ANNOTATION) {
      throw new TypeError(
        `\`template.annotations\` may not set \`${key}\`: Paygress sets it`,
      );
    }
    if (typeof value !== 'string') {
      throw new TypeError(`\`template.annotations.${key}\` must be a string`);
    }
  }
}

/** Kubernetes refuses a pod whose label or annotation key is not this. */
function checkKey(key: string, field: string): void {
  const slash = key.lastIndexOf('/');
  const prefix = slash === -1 ? undefined : key.slice(0, slash);
  const name = key.slice(slash + 1);
  const prefixOk =
    prefix === undefined ||
    (prefix.length <= 253 && DNS1123_SUBDOMAIN.test(prefix));
  if (!prefixOk || name.length > 63 || !KEY_NAME.test(name)) {
    throw new TypeError(
      `\`template.${field}\` key ${JSON.stringify(key)} is not a valid Kubernetes key: an optional DNS subdomain and "/", then at most 63 letters, digits, "-", "_" or "."`,
    );
  }
}

/**
 * Settings of a valid template that give a payer's workload power over
 * its node, one sentence each, for the operator to be warned of.
 */
export function riskyTemplateSettings(template: PodTemplate): string[] {
  const sc = template.securityContext ?? {};
  const risky: string[] = [];
  if (sc.privileged === true) {
    risky.push(
      'securityContext.privileged: a privileged container controls its node',
    );
  }
  if (sc.allowPrivilegeEscalation === true) {
    risky.push(
      'securityContext.allowPrivilegeEscalation: processes may gain more privileges than they started with',
    );
  }
  const added = sc.capabilities?.add ?? [];
  if (added.length > 0) {
    risky.push(`securityContext.capabilities.add: ${added.join(', ')}`);
  }
  if (sc.runAsUser === 0 || sc.runAsNonRoot === false) {
    risky.push('securityContext: the container runs as root');
  }
  return risky;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
