/**
 * Where Paygress finds its Kubernetes API server and credentials: the pod's
 * service account when it runs in a cluster, otherwise a kubeconfig file.
 * Unlike the client library's own default, it never falls back to
 * `http://localhost:8080` when nothing is configured: it says so instead.
 */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';

/** Where a service account's token, CA and namespace are mounted in a pod. */
export const SERVICE_ACCOUNT_DIR =
  '/var/run/secrets/kubernetes.io/serviceaccount';

/** A loaded connection and where it came from. */
export interface KubeConnection {
  readonly kubeConfig: KubeConfig;
  /** `in-cluster` (service account) or `kubeconfig` (a file). */
  readonly source: 'in-cluster' | 'kubeconfig';
  /** Namespace of the current context or of the service account, if any. */
  readonly namespace?: string;
}

/** Inputs of {@link loadKubeConnection}; the defaults are the real ones. */
export interface KubeConnectionOptions {
  /** Environment to read; default `process.env`. */
  readonly env?: NodeJS.ProcessEnv;
  /**
   * Prefix before {@link SERVICE_ACCOUNT_DIR}, for tests that lay out a
   * fake mount in a temporary folder; default `''`.
   */
  readonly rootPrefix?: string;
  /** Home folder holding `.kube/config`; default `os.homedir()`. */
  readonly home?: string;
}

/**
 * In a pod (KUBERNETES_SERVICE_HOST set and the service account token
 * mounted) uses the service account; the token file is re-read by the client
 * so projected tokens rotate. Otherwise `KUBECONFIG` (path list, first file
 * wins for the current context) or `~/.kube/config`.
 * @throws Error when neither is available or no current cluster is set.
 */
export function loadKubeConnection(
  options: KubeConnectionOptions = {},
): KubeConnection {
  const env = options.env ?? process.env;
  const prefix = options.rootPrefix ?? '';
  const home = options.home ?? homedir();
  const kubeConfig = new KubeConfig();

  const tokenFile = `${prefix}${SERVICE_ACCOUNT_DIR}/token`;
  const inCluster =
    Boolean(env.KUBERNETES_SERVICE_HOST) && existsSync(tokenFile);
  const kubeconfigPaths = (env.KUBECONFIG ?? '').split(':').filter(Boolean);
  const homeConfig = join(home, '.kube', 'config');

  if (inCluster) {
    withEnv(env, () => kubeConfig.loadFromCluster(prefix));
  } else if (kubeconfigPaths.length > 0) {
    readKubeconfig(() => withEnv(env, () => kubeConfig.loadFromDefault()));
  } else if (existsSync(homeConfig)) {
    readKubeconfig(() => kubeConfig.loadFromFile(homeConfig));
  } else {
    throw new Error(
      'no Kubernetes connection: not running in a pod (KUBERNETES_SERVICE_HOST unset or no service account token) and no kubeconfig (KUBECONFIG unset and ~/.kube/config missing)',
    );
  }

  if (!kubeConfig.getCurrentCluster()) {
    throw new Error(
      'the kubeconfig has no current context with a cluster; set current-context',
    );
  }
  const context = kubeConfig.getContextObject(kubeConfig.getCurrentContext());
  const namespace = context?.namespace?.trim() || undefined;
  return {
    kubeConfig,
    source: inCluster ? 'in-cluster' : 'kubeconfig',
    ...(namespace && { namespace }),
  };
}

/**
 * Runs `load`, and words its failure without quoting the file: the YAML
 * parser's message shows the lines around the fault, a user's password
 * or token among them.
 */
function readKubeconfig(load: () => void): void {
  try {
    load();
  } catch (err) {
    const { reason, mark } = err as {
      reason?: unknown;
      mark?: { line?: unknown; column?: unknown };
    };
    const where =
      typeof mark?.line === 'number' && typeof mark.column === 'number'
        ? ` at line ${mark.line + 1} column ${mark.column + 1}`
        : '';
    const why =
      typeof reason === 'string'
        ? `${reason}${where}`
        : ((err as NodeJS.ErrnoException).code ?? 'it is not a kubeconfig');
    throw new Error(
      `the kubeconfig cannot be read (${why}); fix KUBECONFIG or ~/.kube/config`,
    );
  }
}

/** The API server's origin, without credentials, for messages. */
export function serverOrigin(kubeConfig: KubeConfig): string {
  const server = kubeConfig.getCurrentCluster()?.server ?? '';
  try {
    return new URL(server).origin;
  } catch {
    return '(no server configured)';
  }
}

function withEnv<T>(env: NodeJS.ProcessEnv, fn: () => T): T {
  // The client library reads process.env itself; let callers pass another.
  if (env === process.env) return fn();
  const keys = [
    'KUBERNETES_SERVICE_HOST',
    'KUBERNETES_SERVICE_PORT',
    'KUBECONFIG',
  ];
  const saved = keys.map((k) => [k, process.env[k]] as const);
  for (const k of keys) {
    if (env[k] === undefined) delete process.env[k];
    else process.env[k] = env[k];
  }
  try {
    return fn();
  } finally {
    for (const [k, v] of saved) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}
