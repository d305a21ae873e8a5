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

  for (const [i, v] of (template.env ?? []).entries()) {
    if (typeof v?.name !== 'string' || v.name === '') {
      throw new TypeError(
        `\`template.env[${i}].name\` must be a non-empty string`,
      );
    }
  }
  for (const [i, p] of (template.ports ?? []).entries()) {
    const port = p?.containerPort;
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new TypeError(
        `\`template.ports[${i}].containerPort\` must be an integer from 1 to 65535`,
      );
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

function checkStrings(list: unknown, field: string): void {
  if (list === undefined) return;
  if (!Array.isArray(list) || !list.every((s) => typeof s === 'string')) {
    throw new TypeError(`\`template.${field}\` must be an array of strings`);
  }
}

function checkLabels(labels: unknown): void {
  if (labels === undefined) return;
  if (typeof labels !== 'object' || labels === null) {
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
  if (typeof annotations !== 'object' || annotations === null) {
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
