/**
 * One Kubernetes API call with a deadline, and the translation of its
 * failures into errors an operator can act on. Every call goes through
 * here so none can hang and none leaks a raw client exception.
 */
import type {
  ConfigurationOptions,
  ObservableMiddleware,
  RequestContext,
  ResponseContext,
} from '@kubernetes/client-node';
import { ApiException, Observable } from '@kubernetes/client-node';
import { ProvisionFailedError } from '../core/errors.ts';
import { NOT_SENT } from '../not-sent.ts';
import { redactSecrets } from '../core/redact.ts';

/** The pod verbs Paygress uses; they match the Role in deploy/kubernetes. */
export type PodVerb = 'create' | 'get' | 'list' | 'patch' | 'delete';

/** What a call is about, for deadlines and error messages. */
export interface CallSite {
  readonly verb: PodVerb;
  readonly namespace: string;
  /** The pod concerned; absent for list. */
  readonly podName?: string;
  /** API server URL (origin only: no credentials), for messages. */
  readonly server: string;
  /** Deadline for the whole call, in ms. */
  readonly timeoutMs: number;
}

/** A Kubernetes `Status` object as the API server sends with an error. */
export interface KubeStatus {
  readonly reason?: string;
  readonly message?: string;
  readonly code?: number;
}

/** Outcome of a call: the value, or the API's HTTP error and Status. */
export type CallResult<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly code: number; readonly status: KubeStatus };

/**
 * Runs `op` with a deadline and the given extra request headers. HTTP
 * errors come back as values so callers can treat 404 or 409 as success;
 * a transport failure or the deadline rejects with ProvisionFailedError.
 */
export async function callKube<T>(
  site: CallSite,
  op: (options: ConfigurationOptions) => Promise<T>,
  headers: Readonly<Record<string, string>> = {},
): Promise<CallResult<T>> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const err = new ProvisionFailedError(
        `the Kubernetes API at ${site.server} did not answer within ${site.timeoutMs} ms while trying to ${describe(site)}`,
        { mayHaveApplied: changes(site) },
      );
      controller.abort(err);
      reject(err);
    }, site.timeoutMs);
  });

  try {
    const options = perCallOptions(controller.signal, headers);
    const value = await Promise.race([op(options), deadline]);
    return { ok: true, value };
  } catch (err) {
    if (err instanceof ProvisionFailedError) throw err;
    if (err instanceof ApiException) {
      return { ok: false, code: err.code, status: parseStatus(err.body) };
    }
    throw unreachable(site, err);
  } finally {
    clearTimeout(timer);
  }
}

/** Answers after which a change may have been made all the same. */
const AFTER_THE_FACT = new Set([500, 502, 504]);

/** The ProvisionFailedError for an HTTP error the caller did not expect. */
export function apiFailure(
  site: CallSite,
  result: { readonly code: number; readonly status: KubeStatus },
): ProvisionFailedError {
  const { code, status } = result;
  const detail = `${code} ${status.reason ?? 'error'}${status.message ? `: ${status.message}` : ''}`;

  switch (code) {
    case 401:
      return new ProvisionFailedError(
        `the Kubernetes API at ${site.server} rejected Paygress's credentials (${detail}); check the service account token or kubeconfig user`,
      );
    case 403:
      // A 403 is RBAC's only when it says what may not be done; a quota
      // or an admission policy (Pod Security) refuses with 403 too.
      if (/exceeded quota/.test(status.message ?? '')) {
        return new ProvisionFailedError(
          `namespace ${site.namespace} is at its ResourceQuota (${detail}); raise the quota, or pods are refused until paid ones expire`,
        );
      }
      if (
        status.message !== undefined &&
        !/\bcannot \w+/.test(status.message)
      ) {
        return new ProvisionFailedError(
          `an admission policy of namespace ${site.namespace} refused to ${describe(site)} (${detail}); make the pod template comply with it`,
        );
      }
      return new ProvisionFailedError(
        `the service account may not ${site.verb} pods in namespace ${site.namespace} (${detail}); bind it to the Role in deploy/kubernetes/rbac.yaml`,
      );
    case 422:
      return new ProvisionFailedError(
        `the Kubernetes API refused the pod as invalid while trying to ${describe(site)} (${detail}); fix the pod template`,
      );
    default:
      return new ProvisionFailedError(
        `the Kubernetes API answered ${detail} while trying to ${describe(site)}`,
        // The API server's own timeout (504: "the server may have
        // completed the request"), an internal error after the write, or
        // a proxy's answer for an upstream that may have taken the change.
        { mayHaveApplied: changes(site) && AFTER_THE_FACT.has(code) },
      );
  }
}

function perCallOptions(
  signal: AbortSignal,
  headers: Readonly<Record<string, string>>,
): ConfigurationOptions {
  // The object-style API hands call-time middleware straight to its
  // observable layer, so this is an observable middleware. It runs after
  // the request factory has set its own headers and authentication, so
  // the headers given here win (the patch Content-Type in particular).
  const middleware: ObservableMiddleware = {
    pre: (ctx: RequestContext) => {
      ctx.setSignal(signal);
      for (const [k, v] of Object.entries(headers)) ctx.setHeaderParam(k, v);
      return new Observable(Promise.resolve(ctx));
    },
    post: (res: ResponseContext) => new Observable(Promise.resolve(res)),
  };
  return { middleware: [middleware], middlewareMergeStrategy: 'append' };
}

function parseStatus(body: unknown): KubeStatus {
  let value = body;
  if (typeof body === 'string') {
    try {
      value = JSON.parse(body);
    } catch {
      return { message: body.slice(0, 200) };
    }
  }
  if (typeof value !== 'object' || value === null) return {};
  const { reason, message, code } = value as Record<string, unknown>;
  return {
    ...(typeof reason === 'string' && { reason }),
    ...(typeof message === 'string' && { message }),
    ...(typeof code === 'number' && { code }),
  };
}

function unreachable(site: CallSite, err: unknown): ProvisionFailedError {
  // The server answered, with something that is not JSON: a proxy in
  // between, most likely, and no question of the address.
  if (err instanceof SyntaxError) {
    return new ProvisionFailedError(
      `the Kubernetes API at ${site.server} answered something that could not be read (${redactSecrets(err.message)}) while trying to ${describe(site)}; check for a proxy between Paygress and the API server`,
      { cause: err, mayHaveApplied: changes(site) },
    );
  }
  const cause = (err as { cause?: { code?: unknown } } | undefined)?.cause;
  const code = typeof cause?.code === 'string' ? cause.code : undefined;
  // A library's message may quote the URL it was given, credentials and
  // all (a kubeconfig's server with a user and password, say).
  const why =
    code ?? redactSecrets(err instanceof Error ? err.message : String(err));
  return new ProvisionFailedError(
    `the Kubernetes API at ${site.server} could not be reached (${why}) while trying to ${describe(site)}; check the API server address and network policy`,
    {
      cause: err,
      mayHaveApplied:
        changes(site) && !(code !== undefined && NOT_SENT.has(code)),
    },
  );
}

/** Whether the call changes the cluster (so may have, unanswered). */
function changes(site: CallSite): boolean {
  return site.verb !== 'get' && site.verb !== 'list';
}

function describe(site: CallSite): string {
  const what = site.podName ? `pod ${site.podName}` : 'pods';
  return `${site.verb} ${what} in namespace ${site.namespace}`;
}
