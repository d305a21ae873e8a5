/**
 * Provisions one pod per paid grant and retires it when the payment runs
 * out. The cluster is the only state: each pod carries its grant (hashed)
 * in a label and its paid-for expiry in an annotation, so a restarted
 * process, or a second replica, sees and reaps exactly what the first made.
 */
import type { KubeConfig, V1Pod } from '@kubernetes/client-node';
import { CoreV1Api, PatchStrategy } from '@kubernetes/client-node';
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import { ProvisionFailedError } from '../core/errors.ts';
import type { Clock, Provisioned, Provisioner } from '../core/ports.ts';
import { systemClock } from '../core/ports.ts';
import { apiFailure, callKube } from './kube-call.ts';
import type { CallSite, PodVerb } from './kube-call.ts';
import { serverOrigin } from './kube-config.ts';
import {
  EXPIRES_AT_ANNOTATION,
  GRANT_LABEL,
  LIFETIME_FROM_ANNOTATION,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  MANAGED_SELECTOR,
  POD_NAME_PREFIX,
  formatExpiry,
  grantHash,
  parseExpiry,
  podNameFor,
} from './pod-identity.ts';
import { buildPod, lifetimeLeft, validatePodTemplate } from './pod-template.ts';
import type { PodTemplate } from './pod-template.ts';

/** Options of {@link KubernetesProvisioner}. */
export interface KubernetesProvisionerOptions {
  /** Connection to the API server (see `loadKubeConnection`). Required. */
  readonly kubeConfig: KubeConfig;
  /** Namespace the pods live in (a DNS-1123 label). Required. */
  readonly namespace: string;
  /** What every pod runs; checked once here. Required. */
  readonly template: PodTemplate;
  /** Time source for expiry decisions; default: the system clock. */
  readonly clock?: Clock;
  /** How often the reaper runs after `start()`, in ms; default 30000. */
  readonly reapIntervalMs?: number;
  /**
   * How long past its paid expiry a pod is kept, in ms; default 60000. A
   * top-up checks its grant before it redeems and lengthens the pod
   * after: a pod reaped in between would be lost to a payer who paid in
   * time.
   */
  readonly reapGraceMs?: number;
  /** Deadline for each API call, in ms; default 5000. */
  readonly requestTimeoutMs?: number;
  /** Where provisioning events are logged; default: not logged. */
  readonly logger?: Logger;
  /**
   * Grants released before a restart and when each would have expired
   * (the wallet store keeps them): their pods are deleted as those of
   * grants {@link KubernetesProvisioner.release}d by this process are.
   */
  readonly released?: Iterable<{ grantId: string; expiresAt: number }>;
}

/** What `start()` found in the namespace. */
export interface StartReport {
  /** Pods of earlier processes that are still paid for and now watched. */
  readonly adopted: number;
  /** Pods whose expiry had already passed, deleted at startup. */
  readonly reaped: number;
}

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const CONFLICT_RETRIES = 5;

/** The Kubernetes implementation of the core's {@link Provisioner} port. */
export class KubernetesProvisioner implements Provisioner {
  readonly #api: CoreV1Api;
  readonly #namespace: string;
  readonly #template: PodTemplate;
  readonly #clock: Clock;
  readonly #reapIntervalMs: number;
  readonly #reapGraceMs: number;
  readonly #timeoutMs: number;
  readonly #logger: Logger | undefined;
  readonly #server: string;
  #timer: NodeJS.Timeout | undefined;
  #tick: Promise<unknown> | undefined;
  // Grants whose payment was handed back (by grant hash, until their
  // expiry): a pod of theirs, however late its create lands, runs for
  // nobody and is deleted.
  readonly #released = new Map<string, number>();
  readonly #releasing = new Set<Promise<void>>();
  // Grants (by hash) whose pod name was found taken by a pod that is not
  // Paygress's: releasing such a grant must not delete it by name.
  readonly #foreign = new LRUCache<string, true>({ max: 1024 });

  constructor(options: KubernetesProvisionerOptions) {
    const {
      namespace,
      reapIntervalMs = 30_000,
      reapGraceMs = 60_000,
      requestTimeoutMs = 5_000,
    } = options;
    if (typeof namespace !== 'string' || !DNS1123_LABEL.test(namespace)) {
      throw new TypeError('`namespace` must be a DNS-1123 label');
    }
    positiveInteger(reapIntervalMs, 'reapIntervalMs', 'ms');
    if (!Number.isSafeInteger(reapGraceMs) || reapGraceMs < 0) {
      throw new TypeError(
        '`reapGraceMs` must be a whole number of ms, 0 or more',
      );
    }
    positiveInteger(requestTimeoutMs, 'requestTimeoutMs', 'ms');

    this.#template = validatePodTemplate(options.template);
    this.#api = options.kubeConfig.makeApiClient(CoreV1Api);
    this.#server = serverOrigin(options.kubeConfig);
    this.#namespace = namespace;
    this.#clock = options.clock ?? systemClock;
    this.#reapIntervalMs = reapIntervalMs;
    this.#reapGraceMs = reapGraceMs;
    this.#timeoutMs = requestTimeoutMs;
    this.#logger = options.logger;
    for (const { grantId, expiresAt } of options.released ?? []) {
      this.#released.set(grantHash(grantId), expiresAt);
    }
  }

  /**
   * Creates the grant's pod, or finds it (created earlier, or by a racing
   * replica) and makes sure it lives at least until `expiresAt`.
   * @param expiresAt ms since epoch; must be in the future.
   * @throws ProvisionFailedError with an operator-facing reason.
   */
  async ensure(grantId: string, expiresAt: number): Promise<Provisioned> {
    this.#checkArgs(grantId, expiresAt);
    // Released, its payment refunded or kept on a credit, and now bought
    // again (a refund that never reached the payer, retried; a credit
    // used): the sweeps must no longer delete its pod, and one the failed
    // create made after all goes first, so the pod and its
    // maxLifetimeSeconds start now, not at the failed payment.
    const hash = grantHash(grantId);
    if (this.#released.delete(hash) && !this.#foreign.has(hash)) {
      await this.#delete(podNameFor(grantId), 'released');
    }
    // AlreadyExists: the pod's name is the grant's, so it is this grant's
    // pod; the payment may only lengthen its life.
    if (!(await this.#create(grantId, expiresAt))) {
      await this.#lengthen(grantId, expiresAt);
    }
    return { podName: podNameFor(grantId) };
  }

  /**
   * Moves the expiry annotation of the grant's pod forward to `expiresAt`
   * (ms since epoch); an earlier or equal value changes nothing.
   * @throws ProvisionFailedError when the pod is gone or the API fails.
   */
  podName(grantId: string): string {
    return podNameFor(grantId);
  }

  async extend(grantId: string, expiresAt: number): Promise<void> {
    this.#checkArgs(grantId, expiresAt);
    try {
      await this.#lengthen(grantId, expiresAt);
    } catch (err) {
      if (!(err instanceof PodGoneError)) throw err;
      // Deleted by hand, or lost with its node, while still paid for: the
      // payer has paid for more, so the pod is made anew.
      this.#logger?.warn(
        { podName: podNameFor(grantId) },
        'pod of a paid grant was gone; creating it again',
      );
      await this.ensure(grantId, expiresAt);
    }
  }

  /** Creates the grant's pod: false when a pod of its name exists. */
  async #create(
    grantId: string,
    expiresAt: number,
    lifetimeFrom?: number,
  ): Promise<boolean> {
    const pod = buildPod(
      this.#template,
      grantId,
      expiresAt,
      lifetimeFrom === undefined
        ? undefined
        : { from: lifetimeFrom, now: this.#clock.now() },
    );
    const podName = podNameFor(grantId);
    const site = this.#site('create', podName);
    const created = await callKube(site, (o) =>
      this.#api.createNamespacedPod(
        { namespace: this.#namespace, body: pod },
        o,
      ),
    );
    if (created.ok) {
      this.#logger?.info(
        { podName, expiresAt: formatExpiry(expiresAt) },
        'pod created',
      );
      return true;
    }
    if (created.code !== 409) throw apiFailure(site, created);
    return false;
  }

  /**
   * Moves the existing pod's expiry forward. One the cluster stopped
   * (evicted, its node shut down) while it was paid for is deleted and
   * made anew for the time paid, as a vanished one is, with what is left
   * of its `maxLifetimeSeconds`: an eviction does not restart the cap.
   */
  async #lengthen(grantId: string, expiresAt: number): Promise<void> {
    try {
      await this.#moveExpiry(grantId, expiresAt);
    } catch (err) {
      if (!(err instanceof PodStoppedError)) throw err;
      const podName = podNameFor(grantId);
      const now = this.#clock.now();
      const from = err.lifetimeFrom ?? now;
      const left = lifetimeLeft(this.#template, from, now);
      if (left !== undefined && left <= 0) {
        throw new ProvisionFailedError(
          `pod ${podName} in namespace ${this.#namespace} was stopped by the cluster (${err.reason}) after its maxLifetimeSeconds; a payment cannot start it again`,
        );
      }
      this.#logger?.warn(
        { podName, reason: err.reason },
        'pod of a paid grant was stopped by the cluster; creating it again',
      );
      await this.#delete(podName, 'stopped', err.resourceVersion);
      if (!(await this.#create(grantId, expiresAt, from))) {
        await this.#moveExpiry(grantId, expiresAt);
      }
    }
  }

  /**
   * The payment for a new grant was handed back, or kept on a credit,
   * because its pod could not be confirmed, but a create that timed out
   * or was answered unreadably may still have made it. Deletes it now,
   * and has every later sweep delete it should the create land after
   * that, until `expiresAt`.
   * Never rejects; failures are logged and left to the sweeps.
   */
  release(grantId: string, expiresAt: number): Promise<void> {
    const hash = grantHash(grantId);
    this.#released.set(hash, expiresAt);
    const podName = podNameFor(grantId);
    // A pod of that name that is not Paygress's (what the create refused
    // to adopt) stays; the sweep deletes only pods with the grant's labels.
    if (this.#foreign.has(hash)) {
      this.#logger?.warn(
        { podName },
        "pod of a released grant (refunded, or kept on a credit) is not Paygress's; left alone",
      );
      return Promise.resolve();
    }
    const work = this.#delete(podName, 'refunded').then(
      () => undefined,
      (err: unknown) =>
        this.#logger?.warn(
          { podName, err },
          'pod of a released grant (refunded, or kept on a credit) not deleted yet; the reaper retries',
        ),
    );
    this.#releasing.add(work);
    void work.finally(() => this.#releasing.delete(work));
    return work;
  }

  /** Deletes every managed pod whose expiry has passed; resolves the count. */
  async reap(): Promise<number> {
    const { deleted } = await this.#sweep();
    return deleted;
  }

  /**
   * Adopts the pods earlier processes created (they are found by label
   * on every sweep), reaps those already expired, and schedules the reaper
   * every `reapIntervalMs`. The schedule stands even when this first sweep
   * rejects, so a briefly unreachable API does not stop reaping.
   */
  async start(): Promise<StartReport> {
    if (this.#timer === undefined) {
      this.#timer = setInterval(
        () => this.#scheduledSweep(),
        this.#reapIntervalMs,
      );
      this.#timer.unref();
    }

    const { live, deleted } = await this.#sweep();
    this.#logger?.info(
      { adopted: live, reaped: deleted },
      'provisioner started',
    );
    return { adopted: live, reaped: deleted };
  }

  /** Stops the reaper and waits for a sweep in progress to finish. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await Promise.all([this.#tick, ...this.#releasing]);
  }

  #scheduledSweep(): void {
    if (this.#tick) return;
    this.#tick = this.#sweep()
      .catch((err: unknown) => {
        this.#logger?.error({ err }, 'reaper sweep failed');
      })
      .finally(() => {
        this.#tick = undefined;
      });
  }

  async #sweep(): Promise<{ live: number; deleted: number }> {
    const site = this.#site('list');
    const listed = await callKube(site, (o) =>
      this.#api.listNamespacedPod(
        { namespace: this.#namespace, labelSelector: MANAGED_SELECTOR },
        o,
      ),
    );
    if (!listed.ok) throw apiFailure(site, listed);

    const now = this.#clock.now();
    for (const [hash, expiresAt] of this.#released) {
      if (expiresAt <= now) this.#released.delete(hash);
    }
    let live = 0;
    let deleted = 0;
    let firstError: ProvisionFailedError | undefined;
    for (const pod of listed.value.items ?? []) {
      if (pod.metadata?.deletionTimestamp) continue;
      const podName = pod.metadata?.name;
      const hash = pod.metadata?.labels?.[GRANT_LABEL];
      // Only a pod named as Paygress names its grant's pod is deleted: an
      // item without a name (a fault of the API or of a proxy before it)
      // would make the delete address the namespace's whole collection.
      if (hash === undefined || podName !== POD_NAME_PREFIX + hash) {
        this.#logger?.warn(
          { podName },
          'listed pod is not named as Paygress names its pods; left alone',
        );
        continue;
      }
      const refunded = this.#released.has(hash);
      if (!refunded) {
        const expiresAt = parseExpiry(
          pod.metadata?.annotations?.[EXPIRES_AT_ANNOTATION],
        );
        if (expiresAt === undefined) {
          this.#logger?.warn(
            { podName },
            'managed pod has no readable expiry; left alone',
          );
          continue;
        }
        if (expiresAt + this.#reapGraceMs > now) {
          live += 1;
          continue;
        }
      }
      try {
        const gone = refunded
          ? await this.#delete(podName, 'refunded')
          : await this.#delete(
              podName,
              'expired',
              pod.metadata?.resourceVersion,
            );
        if (gone) deleted += 1;
      } catch (err) {
        firstError ??= err as ProvisionFailedError;
      }
    }

    if (firstError) throw firstError;
    return { live, deleted };
  }

  /**
   * Deletes a managed pod: one whose paid time is over (`expired`), or one
   * of a grant whose payment was handed back (`refunded`). False when it
   * was gone already, or changed since `resourceVersion` was read.
   */
  async #delete(
    podName: string,
    why: 'expired' | 'refunded' | 'stopped' | 'released',
    resourceVersion?: string,
  ): Promise<boolean> {
    const site = this.#site('delete', podName);
    // The precondition makes the delete of an expired pod lose to a
    // concurrent extend: if the pod changed since it was listed, the API
    // answers 409 and the next sweep judges it again with its new expiry.
    // A pod nobody holds (its payment refunded or kept on a credit) goes at
    // once: a credit used meanwhile waits for it to be gone.
    const body = {
      ...(resourceVersion !== undefined && {
        body: { preconditions: { resourceVersion } },
      }),
      ...((why === 'refunded' || why === 'released') && {
        gracePeriodSeconds: 0,
      }),
    };
    const result = await callKube(site, (o) =>
      this.#api.deleteNamespacedPod(
        { name: podName, namespace: this.#namespace, ...body },
        o,
      ),
    );
    if (result.ok) {
      this.#logger?.info({ podName, why }, 'pod deleted');
      return true;
    }
    if (result.code === 404 || result.code === 409) return false;
    this.#logger?.error({ podName, why, code: result.code }, 'pod not deleted');
    throw apiFailure(site, result);
  }

  async #moveExpiry(grantId: string, expiresAt: number): Promise<void> {
    const podName = podNameFor(grantId);
    for (let attempt = 0; attempt < CONFLICT_RETRIES; attempt += 1) {
      const pod = await this.#read(podName, grantHash(grantId));
      const current = parseExpiry(
        pod.metadata?.annotations?.[EXPIRES_AT_ANNOTATION],
      );
      if (current !== undefined && current >= expiresAt) return;

      // Carrying resourceVersion makes the merge patch conditional: two
      // extends racing cannot leave the earlier expiry in place.
      const site = this.#site('patch', podName);
      const body = {
        metadata: {
          resourceVersion: pod.metadata?.resourceVersion,
          annotations: { [EXPIRES_AT_ANNOTATION]: formatExpiry(expiresAt) },
        },
      };
      const patched = await callKube(
        site,
        (o) =>
          this.#api.patchNamespacedPod(
            { name: podName, namespace: this.#namespace, body },
            o,
          ),
        { 'Content-Type': PatchStrategy.MergePatch },
      );
      if (patched.ok) {
        this.#logger?.info(
          { podName, expiresAt: formatExpiry(expiresAt) },
          'pod expiry extended',
        );
        return;
      }
      if (patched.code === 404) throw this.#gone(podName);
      if (patched.code !== 409) throw apiFailure(site, patched);
    }
    throw new ProvisionFailedError(
      `pod ${podName} in namespace ${this.#namespace} kept changing while its expiry was being extended; gave up after ${CONFLICT_RETRIES} attempts`,
    );
  }

  async #read(podName: string, hash: string): Promise<V1Pod> {
    const site = this.#site('get', podName);
    const read = await callKube(site, (o) =>
      this.#api.readNamespacedPod(
        { name: podName, namespace: this.#namespace },
        o,
      ),
    );
    if (!read.ok)
      throw read.code === 404 ? this.#gone(podName) : apiFailure(site, read);

    const pod = read.value;
    const labels = pod.metadata?.labels ?? {};
    if (
      labels[MANAGED_BY_LABEL] !== MANAGED_BY_VALUE ||
      labels[GRANT_LABEL] !== hash
    ) {
      this.#foreign.set(hash, true);
      throw new ProvisionFailedError(
        `pod ${podName} in namespace ${this.#namespace} exists but is not Paygress's pod for this grant (labels differ); remove or rename it`,
      );
    }
    if (pod.metadata?.deletionTimestamp) {
      throw new ProvisionFailedError(
        `pod ${podName} in namespace ${this.#namespace} is being deleted (its grant expired or was released); it can be provisioned again once it is gone`,
      );
    }
    const phase = pod.status?.phase;
    if (phase === 'Failed' || phase === 'Succeeded') {
      const reason = pod.status?.reason;
      const why = reason ? `, ${reason}` : '';
      // Stopped at the operator's maxLifetimeSeconds: more paid time buys
      // nothing. Stopped by the cluster (Evicted; Terminated when its node
      // shut down; refused by its node): made anew by the caller.
      // (Containers restart in place, so a program's exit stops no pod.)
      if (reason === 'DeadlineExceeded') {
        throw new ProvisionFailedError(
          `pod ${podName} in namespace ${this.#namespace} has stopped (${phase}${why}); a payment cannot start it again`,
        );
      }
      throw new PodStoppedError(
        `pod ${podName} in namespace ${this.#namespace} was stopped by the cluster (${phase}${why})`,
        reason ?? phase,
        pod.metadata?.resourceVersion,
        lifetimeFrom(pod),
      );
    }
    return pod;
  }

  #gone(podName: string): ProvisionFailedError {
    return new PodGoneError(
      `pod ${podName} no longer exists in namespace ${this.#namespace} (expired and reaped, or deleted by hand)`,
    );
  }

  #checkArgs(grantId: string, expiresAt: number): void {
    if (typeof grantId !== 'string' || grantId === '') {
      throw new ProvisionFailedError('cannot provision: the grant id is empty');
    }
    if (!Number.isFinite(expiresAt) || expiresAt <= this.#clock.now()) {
      throw new ProvisionFailedError(
        `cannot provision pod ${podNameFor(grantId)}: its expiry ${String(expiresAt)} is not a time in the future`,
      );
    }
  }

  #site(verb: PodVerb, podName?: string): CallSite {
    return {
      verb,
      namespace: this.#namespace,
      server: this.#server,
      timeoutMs: this.#timeoutMs,
      ...(podName !== undefined && { podName }),
    };
  }
}

/** The grant's pod does not exist (any more). */
class PodGoneError extends ProvisionFailedError {}

/** The grant's pod was stopped, not by its lifetime cap. */
class PodStoppedError extends ProvisionFailedError {
  readonly reason: string;
  readonly resourceVersion: string | undefined;
  /** When the grant's first pod started, ms since epoch, if known. */
  readonly lifetimeFrom: number | undefined;

  constructor(
    message: string,
    reason: string,
    resourceVersion: string | undefined,
    lifetimeFrom: number | undefined,
  ) {
    super(message);
    this.reason = reason;
    this.resourceVersion = resourceVersion;
    this.lifetimeFrom = lifetimeFrom;
  }
}

/**
 * When the grant's first pod started: carried on a pod made anew, else
 * this pod's own start (its creation, before the kubelet reports one).
 */
function lifetimeFrom(pod: V1Pod): number | undefined {
  return (
    parseExpiry(pod.metadata?.annotations?.[LIFETIME_FROM_ANNOTATION]) ??
    timeOf(pod.status?.startTime) ??
    timeOf(pod.metadata?.creationTimestamp)
  );
}

/** A client-node timestamp (a Date, or a string as some answers carry). */
function timeOf(value: Date | string | undefined): number | undefined {
  if (!(value instanceof Date)) return parseExpiry(value);
  const ms = value.getTime();
  return Number.isFinite(ms) ? ms : undefined;
}

function positiveInteger(value: number, name: string, unit: string): void {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new TypeError(`\`${name}\` must be a positive integer (${unit})`);
  }
}
