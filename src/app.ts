/**
 * The composition root: builds the real mint gateway, store, provisioner
 * and gate from a configuration, starts the listeners, and owns shutdown.
 * The only place where core, protocols and infrastructure meet.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { configWarnings, type Config } from './config.ts';
import { useSecp256k1 } from './core/curve.ts';
import { Gate } from './core/gate.ts';
import { GrantSigner, grantIdFor } from './core/grants.ts';
import { normalizeMintUrl } from './core/mint-url.ts';
import { systemClock, type Clock, type Provisioner } from './core/ports.ts';
import { Pricing } from './core/pricing.ts';
import { Redeemer } from './core/redeemer.ts';
import { ReplayGuard } from './core/replay-guard.ts';
import { nativeSecp256k1 } from './core/secp256k1.ts';
import { loadKubeConnection } from './k8s/kube-config.ts';
import { KubernetesProvisioner } from './k8s/provisioner.ts';
import { CashuMintGateway, type MintCircuit } from './mint/cashu-gateway.ts';
import { Metrics } from './metrics.ts';
import { startGrpcServer, type GrpcServer } from './protocols/grpc-server.ts';
import { startHttpServer, type HttpServer } from './protocols/http-server.ts';
import { createDecisionLog } from './protocols/decision-log.ts';
import {
  startAdminServer,
  type AdminServer,
} from './protocols/admin-server.ts';
import { openToOthers } from './store/owner-only.ts';
import { SqliteWalletStore, WALLET_FILE } from './store/sqlite-wallet-store.ts';
import { lowSpaceWarning, volumeSpace } from './store/volume.ts';
import { StartupError, systemCode } from './startup-error.ts';
import { hostPort } from './host-port.ts';

/** Options of {@link startApp} beyond the configuration. */
export interface AppOptions {
  readonly config: Config;
  readonly logger: Logger;
  /** Clock for grants and expiry. Default the system clock. */
  readonly clock?: Clock;
  /** Provisioner to use instead of building one from the configuration. */
  readonly provisioner?: Provisioner & { stop?(): Promise<void> | void };
}

/** A running Paygress. */
export interface App {
  readonly httpPort: number;
  readonly grpcPort: number;
  /** Port of the admin listener, when one is configured. */
  readonly adminPort?: number;
  readonly store: SqliteWalletStore;
  /** True once every mint's keysets have been loaded at least once. */
  ready(): boolean;
  /**
   * Resolves, with its cause, once a sync of the wallet store failed: no
   * payment is taken from then on, until a restart reopens the store.
   */
  readonly storeFailed: Promise<unknown>;
  /** Stops accepting, finishes in-flight requests, closes the store. */
  close(): Promise<void>;
  /**
   * What a stop at once leaves behind, written now: the refusal counts the
   * log's limit held back, and the store, closed (requests in flight are
   * cut, to be settled at the next start). The process exits after it.
   */
  stopNow(): void;
}

/** Why a listener could not listen, by the system error's code. */
const LISTEN_WHY: Record<string, string> = {
  EADDRINUSE:
    'the address is in use (EADDRINUSE): another process listens there',
  EADDRNOTAVAIL: 'no interface of this host has that address (EADDRNOTAVAIL)',
  EACCES: 'permission denied (EACCES): ports below 1024 need privileges',
  ENOTFOUND: 'the host name does not resolve (ENOTFOUND)',
  EAI_AGAIN: 'the host name does not resolve (EAI_AGAIN)',
  EAFNOSUPPORT: 'this host has no such address family (EAFNOSUPPORT)',
};

/**
 * Starts a listener; a failure to listen says where, why and which
 * settings to change, instead of Node's `listen EADDRINUSE ...` alone.
 */
async function listening<T>(
  what: string,
  at: { host: string; port: number },
  settings: string,
  start: () => Promise<T>,
): Promise<T> {
  try {
    return await start();
  } catch (err) {
    const code = systemCode(err);
    if (code === undefined) throw err;
    const why = LISTEN_WHY[code] ?? (err as Error).message;
    throw new StartupError(
      `${what} cannot listen on ${hostPort(at.host, at.port)}: ${why}; change ${settings}`,
      { cause: err },
    );
  }
}

/**
 * How long a shutdown waits for the wallet store's syncs under way: one
 * that has not ended by then is a disk that does not answer.
 */
const SYNC_WAIT_MS = 10_000;

/** Interval between attempts to settle unfinished redemptions, in ms. */
const SETTLE_INTERVAL_MS = 30_000;

/**
 * A sync of the wallet store running this long is logged, and its end:
 * payments have waited that long for the disk. Shorter ones show in
 * `paygress_store_sync_duration_seconds` only.
 */
const SLOW_SYNC_MS = 5000;

export async function startApp(options: AppOptions): Promise<App> {
  const { config, logger } = options;
  const clock = options.clock ?? systemClock;
  const mints = config.mints.map((m) => m.url);
  for (const warning of configWarnings(config)) logger.warn(warning);
  const secp256k1 = useSecp256k1(config.secp256k1);
  if (config.secp256k1 === 'auto' && secp256k1 === 'wasm') {
    // Cached: the load that failed just now, not another attempt.
    const native = nativeSecp256k1();
    logger.warn(
      { err: native instanceof Error ? native.message : undefined },
      'the native secp256k1 build does not load here: redemptions use the WebAssembly build, whose curve work is about three times slower (set secp256k1 to native to refuse to start instead)',
    );
  }

  // Set once the metrics exist; the first sync comes with a payment.
  let synced: (ms: number) => void = () => {};
  let storeFailed: (err: unknown) => void = () => {};
  const failed = new Promise<unknown>((resolve) => (storeFailed = resolve));
  const storeFile = join(config.dataDir, WALLET_FILE);
  const storeExisted = existsSync(storeFile);
  const store = new SqliteWalletStore({
    dataDir: config.dataDir,
    now: () => clock.now(),
    serving: true,
    onFailedSync: (err) => {
      logger.error(
        { err },
        'a sync of the wallet store failed: payments are refused until Paygress restarts (/healthz answers 503)',
      );
      storeFailed(err);
    },
    onSynced: (ms) => synced(ms),
    onFailedCut: (reason) => {
      logger.error(
        { reason },
        `the wallet store's log could not be cut back to its last commit (${reason}): the next start may keep the change whose sync failed, which Paygress answered as failed (a refund, or a single-request credit's use)`,
      );
    },
  });
  // Not refused: a Kubernetes volume's root is group-owned through the
  // pod's fsGroup, on purpose, and not Paygress's to change. Only a
  // directory anyone may write is a warning: others could delete or
  // replace the files; listing their names is logged as information.
  const open = openToOthers(config.dataDir);
  if (open?.access === 'write') {
    logger.warn(
      { dataDir: config.dataDir, mode: open.mode },
      `the data directory is writable by every user (mode ${open.mode}): Paygress's own files in it are 0600, but anyone may delete or replace them; make it 0700 if you can`,
    );
  } else if (open !== undefined) {
    logger.info(
      { dataDir: config.dataDir, mode: open.mode },
      `the data directory may be listed by other users (mode ${open.mode}); Paygress's own files in it are 0600`,
    );
  }
  try {
    for (const warning of storeWarnings(store, config, storeExisted)) {
      logger.warn(warning);
    }
  } catch (err) {
    store.close();
    throw err;
  }
  let guard: ReplayGuard;
  try {
    guard = new ReplayGuard({ cacheSize: config.replay.cacheSize, store });
  } catch (err) {
    store.close();
    // Its arrays are allocated whole, at once: a size the host cannot
    // give fails here, not later.
    throw new StartupError(
      `the replay cache of ${config.replay.cacheSize} entries cannot be allocated (${String((err as Error)?.message ?? err)}); lower replay.cacheSize (PAYGRESS_REPLAY_CACHE_SIZE) or give Paygress more memory`,
      { cause: err },
    );
  }
  const metrics = new Metrics({
    balances: () => store.balances(),
    replay: () => guard.stats(),
    volume: () => volumeSpace(config.dataDir),
    circuits: (): MintCircuit[] => gateway.circuits(),
    mints: config.mints.map((m) => ({
      url: normalizeMintUrl(m.url),
      units: m.units,
    })),
    listeners:
      config.admin === undefined ? ['http', 'grpc'] : ['http', 'grpc', 'admin'],
    storeSyncRunning: () => store.syncRunningMs() / 1000,
    owedPayments: () => store.owedCount(),
  });
  const syncWatch = watchSyncs(store, logger);
  synced = (ms) => {
    metrics.observeStoreSync(ms);
    syncWatch.ended(ms);
  };
  const gateway = new CashuMintGateway({
    mints,
    timeoutMs: config.mint.timeoutMs,
    onRequest: metrics.observeMint,
    lockTo: config.wallet.operatorPubkey,
  });
  if (config.wallet.operatorPubkey === undefined) {
    logger.warn(
      { dataDir: config.dataDir },
      'no wallet.operatorPubkey: redeemed proofs are stored as bearer money; anyone who reads the data directory can spend them',
    );
  }
  const redeemer = new Redeemer({
    gateway,
    store,
    guard,
    clock,
    requireDleq: config.tokens.requireDleq,
  });
  const provisioner =
    options.provisioner ??
    (await provisionerFor(
      config,
      clock,
      logger,
      store.refundedGrants(clock.now()),
    ));
  const gate = new Gate({
    pricing: new Pricing(config.pricing.rules, config.pricing.default, {
      trustedAmountHeader: config.pricing.trustedAmountHeader,
      mints: config.mints,
    }),
    gateway,
    redeemer,
    store,
    grants: grantSigner(config, clock, logger),
    clock,
    maxTokenLength: config.tokens.maxLength,
    grantCookie: config.grants.cookieName,
    refunds: config.wallet.operatorPubkey === undefined,
    ...(provisioner ? { provisioner } : {}),
  });

  const settled = await redeemer.settleAll();
  if (Object.values(settled).some((n) => n > 0)) {
    logger.info(settled, 'settled redemptions left unfinished');
  }
  const checkSpace = lowSpaceWarning(config.dataDir, logger);
  checkSpace();
  const settler = setInterval(() => {
    checkSpace();
    void redeemer.settleAll().catch((err) => {
      logger.error({ err }, 'settling unfinished redemptions failed');
    });
  }, SETTLE_INTERVAL_MS);
  settler.unref();

  const loaded = new Set<string>();
  const warm = async () => {
    for (const mint of mints) {
      if (loaded.has(mint)) continue;
      await gateway.keysets(mint).then(
        (keysets) => {
          loaded.add(mint);
          // A unit the mint has no active keyset in (a typo, a unit it
          // does not issue) can never be paid: say so once, at load.
          const offered = config.mints.find((m) => m.url === mint);
          const missing = (offered?.units ?? []).filter(
            (unit) => !keysets.some((k) => k.active && k.unit === unit),
          );
          if (missing.length > 0) {
            logger.warn(
              {
                mint,
                units: missing,
                mintUnits: [...new Set(keysets.map((k) => k.unit))],
              },
              'the mint has no active keyset in a unit it is listed for: no token in that unit can pay',
            );
          }
        },
        (err: Error) =>
          logger.warn(
            { mint, err: err.message },
            'mint keysets not loaded yet',
          ),
      );
    }
  };
  let http: HttpServer | undefined;
  let grpc: GrpcServer | undefined;
  let admin: AdminServer | undefined;
  let closing: Promise<void> | undefined;
  // Ready once every mint's keysets are loaded, and no longer once
  // shutting down, so probes take Paygress out of rotation first.
  const unready = (): string | undefined => {
    if (closing !== undefined) return 'shutting down';
    const waiting = mints.filter((m) => !loaded.has(m));
    return waiting.length === 0
      ? undefined
      : `keysets not loaded yet from ${waiting.join(', ')} (the log says why)`;
  };
  const ready = () => unready() === undefined;
  // A store that failed a sync takes no more payments until a restart.
  const alive = () => !store.failed;
  const publishReadiness = () =>
    grpc?.health.setStatus(ready() ? 'SERVING' : 'NOT_SERVING');

  await warm();
  const warmer = setInterval(() => void warm().then(publishReadiness), 5000);
  warmer.unref();

  const scrape = () => metrics.render();
  // One for both listeners, so the refusal limit holds for the process.
  const decisionLog = createDecisionLog(logger, {
    policy: config.logDecisions,
    refusalLimit: config.logRefusalLimit,
  });
  try {
    http = await listening(
      'HTTP (forward-auth, auth_request)',
      config.http,
      'http.host or http.port (PAYGRESS_HTTP_HOST, PAYGRESS_HTTP_PORT)',
      () =>
        startHttpServer({
          host: config.http.host,
          port: config.http.port,
          decider: gate,
          logger,
          ready,
          unready,
          alive,
          observe: metrics.observeDecision,
          decisionLog,
          maxConnections: config.http.maxConnections,
          connectionDropped: () => metrics.connectionDropped('http'),
          // With an admin listener, the metrics are served there only.
          ...(config.admin === undefined && { metrics: scrape }),
        }),
    );
    grpc = await listening(
      'gRPC',
      config.grpc,
      'grpc.host or grpc.port (PAYGRESS_GRPC_HOST, PAYGRESS_GRPC_PORT)',
      () =>
        startGrpcServer({
          host: config.grpc.host,
          port: config.grpc.port,
          decider: gate,
          logger,
          observe: metrics.observeDecision,
          decisionLog,
          maxConnections: config.grpc.maxConnections,
          connectionDropped: () => metrics.connectionDropped('grpc'),
        }),
    );
    if (config.admin !== undefined) {
      const at = config.admin;
      admin = await listening(
        'the admin listener',
        at,
        'admin.host or admin.port (PAYGRESS_ADMIN_HOST, PAYGRESS_ADMIN_PORT)',
        () =>
          startAdminServer({
            ...at,
            logger,
            ready,
            unready,
            alive,
            metrics: scrape,
            connectionDropped: () => metrics.connectionDropped('admin'),
          }),
      );
    }
  } catch (err) {
    // Nothing started may outlive a failed start: the caller exits.
    clearInterval(settler);
    clearInterval(warmer);
    syncWatch.stop();
    await http?.close(0);
    await grpc?.close(0);
    await provisioner?.stop?.();
    await gateway.close();
    store.close();
    throw err;
  }
  publishReadiness();
  logger.info(
    {
      http: http.port,
      grpc: grpc.port,
      ...(admin !== undefined && { admin: admin.port }),
      // Where each listens: 0.0.0.0 takes connections from beyond the pod.
      addresses: {
        http: hostPort(config.http.host, http.port),
        grpc: hostPort(config.grpc.host, grpc.port),
        ...(admin !== undefined && {
          admin: hostPort(config.admin!.host, admin.port),
        }),
      },
      mints,
      dataDir: config.dataDir,
      secp256k1,
    },
    'paygress listening',
  );

  return {
    httpPort: http.port,
    grpcPort: grpc.port,
    ...(admin !== undefined && { adminPort: admin.port }),
    store,
    ready,
    storeFailed: failed,
    stopNow: () => {
      decisionLog.flush();
      store.close();
    },
    close: () =>
      (closing ??= (async () => {
        clearInterval(settler);
        clearInterval(warmer);
        syncWatch.stop();
        // The listeners close first: a reaper sweep under way (Kubernetes
        // calls) must not hold them open and add its time to the grace.
        await Promise.all([
          http.close(config.shutdownGraceMs),
          grpc.close(config.shutdownGraceMs),
        ]);
        // Requests cut off at the grace period may still be redeeming: give
        // their outcome (an allow that never reached its payer is owed) one
        // more grace period to reach the store. What is still running then
        // stays pending in the store and is settled at the next start.
        await Promise.race([
          Promise.all([http.idle(), grpc.idle()]),
          new Promise((resolve) =>
            setTimeout(resolve, config.shutdownGraceMs).unref(),
          ),
        ]);
        // The sweep and the pod deletions of refunds made meanwhile.
        await provisioner?.stop?.();
        // Requests still waiting on the mint are decided by now.
        await gateway.close();
        // What the refusal limit held back in the last second is counted.
        decisionLog.flush();
        // Probes reach the admin listener until the end: alive, not ready.
        await admin?.close();
        // A sync still running may yet fail: the store closes as a failed
        // one then, and Paygress exits 75. A disk that does not answer
        // does not hold the shutdown for good.
        await Promise.race([
          store.settled(),
          new Promise((resolve) => setTimeout(resolve, SYNC_WAIT_MS).unref()),
        ]);
        store.close();
      })()),
  };
}

/**
 * Logs a sync of the wallet store that has run {@link SLOW_SYNC_MS}, once,
 * and its end: a disk that stops answering holds every payment, while
 * the process looks healthy otherwise.
 */
function watchSyncs(
  store: SqliteWalletStore,
  logger: Logger,
): { ended(ms: number): void; stop(): void } {
  let told = false;
  const timer = setInterval(() => {
    const running = store.syncRunningMs();
    if (told || running < SLOW_SYNC_MS) return;
    told = true;
    logger.warn(
      { runningSeconds: Math.round(running / 1000) },
      `a sync of the wallet store has run over ${SLOW_SYNC_MS / 1000} s and not ended: payments wait for it; is the data volume failing?`,
    );
  }, 1000);
  timer.unref();
  return {
    ended(ms) {
      if (!told) return;
      told = false;
      logger.warn(
        { seconds: Math.round(ms / 100) / 10 },
        `the slow sync of the wallet store ended after ${(ms / 1000).toFixed(1)} s`,
      );
    },
    stop: () => clearInterval(timer),
  };
}

/**
 * The Kubernetes provisioner when provisioning is on; with it off, nothing
 * is built and no API call is ever made.
 */
/**
 * How long past its expiry a pod is kept: a top-up checks its grant, then
 * asks the mint (its keysets and the swap, each again should the mint
 * have rotated its keys), syncs its record, and only then lengthens the
 * pod. At least a minute; more when the mint's timeout is set long, up
 * to a quarter of an hour of a pod nobody pays for.
 */
export function reapGraceFor(config: Config): number {
  const longest =
    4 * config.mint.timeoutMs + config.provisioning.timeoutMs + 5_000;
  return Math.min(Math.max(60_000, longest), 15 * 60_000);
}

async function provisionerFor(
  config: Config,
  clock: Clock,
  logger: Logger,
  refunded: readonly { id: string; until: number }[],
): Promise<KubernetesProvisioner | undefined> {
  const { enabled, namespace, template } = config.provisioning;
  if (!enabled || template === undefined) return undefined;

  const connection = loadKubeConnection();
  const provisioner = new KubernetesProvisioner({
    kubeConfig: connection.kubeConfig,
    namespace,
    template,
    requestTimeoutMs: config.provisioning.timeoutMs,
    reapGraceMs: reapGraceFor(config),
    clock,
    logger: logger.child({ component: 'provisioner' }),
    // Payments refunded before this start whose new grant's pod a late
    // create may yet make: the first sweep and the later ones delete it.
    released: refunded.map(({ id, until }) => ({
      grantId: grantIdFor(id),
      expiresAt: until,
    })),
  });
  // An API server that is down at start-up must not keep Paygress down:
  // payments made meanwhile are refunded, and the reaper retries.
  await provisioner.start().then(
    (report) =>
      logger.info(
        { namespace, source: connection.source, ...report },
        'pod provisioning on',
      ),
    (err: Error) =>
      logger.error(
        { namespace, err: err.message },
        'pod provisioning on, but adopting existing pods failed; retrying on schedule',
      ),
  );
  return provisioner;
}

/**
 * What the wallet store holds that the configuration no longer serves: a
 * store made just now (a first start, or a dataDir that is not the one
 * Paygress served from), value at mints no longer listed, and proofs
 * stored before the operator's key was set.
 */
function storeWarnings(
  store: SqliteWalletStore,
  config: Config,
  existed: boolean,
): string[] {
  const warnings: string[] = [];
  if (!existed) {
    warnings.push(
      `a new, empty wallet store was made at ${join(config.dataDir, WALLET_FILE)}: right at a first start; if Paygress served before, dataDir (PAYGRESS_DATA_DIR) is not the directory it served from, whose store holds its money, the payments it owes and the record of spent tokens`,
    );
    return warnings;
  }
  const listed = new Set(config.mints.map((m) => m.url));
  for (const b of store.balances()) {
    if (listed.has(b.mint)) continue;
    const pending =
      b.pending > 0 ? ` (and ${b.pending} ${b.unit} pending)` : '';
    warnings.push(
      `the wallet store holds ${b.available} ${b.unit}${pending} at ${b.mint}, which is not in mints: its pending redemptions cannot be settled and payments owed there cannot be delivered; list it again to settle them, or take the money out with paygress wallet export`,
    );
  }
  const key = config.wallet.operatorPubkey;
  if (key !== undefined) {
    // A mint no longer listed is named above, with all it holds.
    for (const u of store.unlockedBalances(key)) {
      if (!listed.has(u.mint)) continue;
      if (u.bearer > 0) {
        warnings.push(
          `the wallet store holds ${u.bearer} ${u.unit} at ${u.mint} in proofs locked to no key (stored before wallet.operatorPubkey was set): anyone who reads the data directory can spend them; take them out with paygress wallet export`,
        );
      }
      if (u.otherKey > 0) {
        warnings.push(
          `the wallet store holds ${u.otherKey} ${u.unit} at ${u.mint} in proofs locked to another key than wallet.operatorPubkey (one set before): only that key's private key spends them; take them out with paygress wallet export and receive them with it`,
        );
      }
    }
  }
  return warnings;
}

function grantSigner(config: Config, clock: Clock, logger: Logger) {
  let key = config.grants.key;
  if (key === undefined) {
    // Grants then live only as long as this process; fine for per-request
    // routes and development, so say it once rather than refuse to start.
    key = randomBytes(32).toString('base64url');
    logger.warn(
      'no grants.key configured: grant credentials will not survive a restart or work across replicas',
    );
  }
  return new GrantSigner({
    key,
    previousKeys: config.grants.previousKeys,
    clock,
  });
}
