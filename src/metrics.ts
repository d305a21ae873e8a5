/**
 * Prometheus metrics, served on `/metrics` of the HTTP listener. Reason
 * labels are the stable PAYGRESS_* codes, so a dashboard, a log search and
 * the deny body all use the same words. Labels hold no token material and
 * have bounded values (mint URLs come from the allow-list only).
 */
import client from 'prom-client';
import type { AuthRequest, Decision } from './core/model.ts';
import type { Balance } from './core/ports.ts';
import type { ReplayGuardStats, ReplayLayer } from './core/replay-guard.ts';
import type { MintCircuit, MintRequestEvent } from './mint/cashu-gateway.ts';
import type { VolumeSpace } from './store/volume.ts';

/** Sources read at scrape time. */
export interface MetricSources {
  readonly balances: () => Balance[];
  readonly replay: () => ReplayGuardStats;
  /** Space on the data directory's volume; undefined when unknown. */
  readonly volume: () => VolumeSpace | undefined;
  /** Circuit breakers of the mint operations called so far. */
  readonly circuits: () => MintCircuit[];
  /**
   * Configured mints and their units: each has a balance series from the
   * start, at 0 until it holds something, so an alert sees it.
   */
  readonly mints: readonly {
    readonly url: string;
    readonly units: readonly string[];
  }[];
  /** Listeners that limit their connections, each counted from 0. */
  readonly listeners: readonly ConnectionListener[];
  /** How long the wallet store's sync under way has run, in s; 0 if none. */
  readonly storeSyncRunning: () => number;
  /** Payments whose answer was lost, owed to their token's retry. */
  readonly owedPayments: () => number;
}

/** Listeners with a limit on their connections. */
export type ConnectionListener = 'http' | 'grpc' | 'admin';

const REPLAY_LAYERS: readonly ReplayLayer[] = ['in_flight', 'cache', 'store'];

/** Latency buckets in seconds: auth decisions live in the low ms. */
const BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
];

/** Buckets of the store's syncs: a failing volume takes tens of seconds. */
const SYNC_BUCKETS = [...BUCKETS, 10, 30, 60];

export class Metrics {
  readonly registry = new client.Registry();
  readonly #decisions = new DecisionTally();
  readonly #mintRequests: client.Counter<'mint' | 'operation' | 'outcome'>;
  readonly #mintLatency: client.Histogram<'mint' | 'operation'>;
  readonly #provisioning: client.Counter<'outcome'>;
  readonly #droppedConnections: client.Counter<'listener'>;
  readonly #storeSyncs: client.Histogram;

  constructor(sources: MetricSources) {
    const registers = [this.registry];
    client.collectDefaultMetrics({
      register: this.registry,
      prefix: 'paygress_',
    });

    this.#mintRequests = new client.Counter({
      name: 'paygress_mint_requests_total',
      help: 'Requests to mints by mint, operation and outcome (ok or a reason code).',
      labelNames: ['mint', 'operation', 'outcome'],
      registers,
    });
    this.#mintLatency = new client.Histogram({
      name: 'paygress_mint_request_duration_seconds',
      help: 'Duration of mint requests.',
      labelNames: ['mint', 'operation'],
      buckets: BUCKETS,
      registers,
    });
    this.#provisioning = new client.Counter({
      name: 'paygress_provisioning_total',
      help: 'Pods provisioned for payments (ok) or refused and refunded (failed).',
      labelNames: ['outcome'],
      registers,
    });
    this.#droppedConnections = new client.Counter({
      name: 'paygress_connections_dropped_total',
      help: 'Connections closed on arrival because the listener (http, grpc, admin) had its limit open.',
      labelNames: ['listener'],
      registers,
    });
    for (const listener of sources.listeners) {
      this.#droppedConnections.inc({ listener }, 0);
    }
    this.#storeSyncs = new client.Histogram({
      name: 'paygress_store_sync_duration_seconds',
      help: "Syncs of the wallet store's log that payments wait for (a swap's record before the swap leaves).",
      buckets: SYNC_BUCKETS,
      registers,
    });
    new client.Gauge({
      name: 'paygress_store_sync_running_seconds',
      help: "How long the wallet store's sync under way has run, 0 when none runs: a disk that stops answering keeps it rising, and payments wait.",
      registers,
      collect() {
        this.set(sources.storeSyncRunning());
      },
    });
    new client.Gauge({
      name: 'paygress_payments_owed',
      help: "Payments redeemed whose answer never reached the payer (the proxy gave up, a shutdown cut it): the same token's retry gets what it paid for.",
      registers,
      collect() {
        this.set(sources.owedPayments());
      },
    });
    new client.Gauge({
      name: 'paygress_replay_cache_entries',
      help: 'Redeemed proof Ys held in the in-memory replay cache.',
      registers,
      collect() {
        this.set(sources.replay().cached);
      },
    });
    new client.Gauge({
      name: 'paygress_redemptions_in_flight',
      help: 'Redemptions running now (proofs claimed, mint answer awaited).',
      registers,
      collect() {
        this.set(sources.replay().inflight);
      },
    });
    new client.Counter({
      name: 'paygress_replay_matches_total',
      help: 'Tokens whose proofs the replay guard already knew, by the layer that knew them (in_flight, cache, store).',
      labelNames: ['layer'],
      registers,
      collect() {
        const { refused } = sources.replay();
        this.reset();
        for (const layer of REPLAY_LAYERS) this.inc({ layer }, refused[layer]);
      },
    });
    new client.Gauge({
      name: 'paygress_mint_circuit_open',
      help: 'Whether the circuit breaker of a mint operation is open (1) and requests to it are refused without trying, or closed (0).',
      labelNames: ['mint', 'operation'],
      registers,
      collect() {
        this.reset();
        for (const c of sources.circuits()) {
          this.set(
            { mint: c.mint, operation: c.operation },
            c.state === 'closed' ? 0 : 1,
          );
        }
      },
    });
    new client.Gauge({
      name: 'paygress_data_volume_bytes',
      help: 'Space on the volume of the data directory by state (available, size): once none is available, every payment is refused.',
      labelNames: ['state'],
      registers,
      collect() {
        this.reset();
        const space = sources.volume();
        if (space === undefined) return;
        this.set({ state: 'available' }, space.available);
        this.set({ state: 'size' }, space.size);
      },
    });
    new client.Gauge({
      name: 'paygress_wallet_balance',
      help: 'Value in the wallet store by mint, unit and state (available, pending).',
      labelNames: ['mint', 'unit', 'state'],
      registers,
      collect() {
        this.reset();
        for (const { url, units } of sources.mints) {
          for (const unit of units) {
            for (const state of ['available', 'pending']) {
              this.set({ mint: url, unit, state }, 0);
            }
          }
        }
        for (const b of sources.balances()) {
          this.set(
            { mint: b.mint, unit: b.unit, state: 'available' },
            b.available,
          );
          this.set({ mint: b.mint, unit: b.unit, state: 'pending' }, b.pending);
        }
      },
    });
  }

  /** Records one decision; pass as the adapters' `observe`. */
  readonly observeDecision = (
    request: AuthRequest,
    decision: Decision,
    durationMs: number,
  ): void => {
    const reason = decision.kind === 'deny' ? decision.reason : '';
    this.#decisions.record(
      request.protocol,
      decision.kind,
      reason,
      durationMs / 1000,
    );

    if (reason === 'PAYGRESS_PROVISION_FAILED') {
      this.#provisioning.inc({ outcome: 'failed' });
    } else if (
      decision.kind === 'allow' &&
      decision.amount > 0 &&
      decision.upstreamHeaders['X-Provisioned-Pod']
    ) {
      this.#provisioning.inc({ outcome: 'ok' });
    }
  };

  /** Records one mint request; pass as the gateway's `onRequest`. */
  readonly observeMint = (event: MintRequestEvent): void => {
    this.#mintRequests.inc({
      mint: event.mint,
      operation: event.operation,
      outcome: event.outcome,
    });
    this.#mintLatency.observe(
      { mint: event.mint, operation: event.operation },
      event.durationMs / 1000,
    );
  };

  /** Records one sync of the wallet store; pass as its `onSynced`. */
  readonly observeStoreSync = (ms: number): void => {
    this.#storeSyncs.observe(ms / 1000);
  };

  /** Counts a connection a listener closed for being over its limit. */
  connectionDropped(listener: ConnectionListener): void {
    this.#droppedConnections.inc({ listener });
  }

  /** The text exposition for `/metrics`. */
  async render(): Promise<{ contentType: string; body: string }> {
    return {
      contentType: this.registry.contentType,
      body: (await this.registry.metrics()) + this.#decisions.render(),
    };
  }
}

/** One `paygress_decisions_total` series. */
interface DecisionCount {
  readonly labels: string;
  count: number;
}

/**
 * The decisions of one protocol and outcome: their latency (one
 * `paygress_decision_duration_seconds` series) and their count by reason.
 */
interface DecisionSeries {
  readonly labels: string;
  /** Observations per bucket of {@link BUCKETS}, not cumulative. */
  readonly buckets: number[];
  sum: number;
  count: number;
  readonly reasons: Map<string, DecisionCount>;
}

/**
 * The two metrics written once per decision, counted in plain numbers and
 * rendered at scrape time in the same text prom-client writes for a
 * Counter and a Histogram. prom-client's `inc` and `observe` check and
 * hash their label object on every call, 0.9 µs a decision here
 * (`bench/observe-cost.ts`), a few percent of a refusal; these series are
 * the only ones the request path touches.
 */
export class DecisionTally {
  /** protocol → outcome. */
  readonly #series = new Map<string, Map<string, DecisionSeries>>();

  record(
    protocol: string,
    outcome: string,
    reason: string,
    seconds: number,
  ): void {
    // Written out without closures: this runs for every request.
    let outcomes = this.#series.get(protocol);
    if (outcomes === undefined) {
      outcomes = new Map();
      this.#series.set(protocol, outcomes);
    }
    let series = outcomes.get(outcome);
    if (series === undefined) {
      series = {
        labels: labelText({ protocol, outcome }),
        buckets: BUCKETS.map(() => 0),
        sum: 0,
        count: 0,
        reasons: new Map(),
      };
      outcomes.set(outcome, series);
    }
    let count = series.reasons.get(reason);
    if (count === undefined) {
      count = { labels: labelText({ protocol, outcome, reason }), count: 0 };
      series.reasons.set(reason, count);
    }
    count.count++;
    for (let i = 0; i < BUCKETS.length; i++) {
      if (seconds <= BUCKETS[i]!) {
        series.buckets[i]!++;
        break;
      }
    }
    series.sum += seconds;
    series.count++;
  }

  /** Both metrics in Prometheus's text format, each line ending in `\n`. */
  render(): string {
    const counts = [
      '',
      '# HELP paygress_decisions_total Decisions by protocol, outcome (allow, deny) and reason code.',
      '# TYPE paygress_decisions_total counter',
    ];
    const name = 'paygress_decision_duration_seconds';
    const latency = [
      '',
      `# HELP ${name} Time from request to decision, mint round trips included.`,
      `# TYPE ${name} histogram`,
    ];
    for (const outcomes of this.#series.values()) {
      for (const series of outcomes.values()) {
        for (const { labels, count } of series.reasons.values()) {
          counts.push(`paygress_decisions_total{${labels}} ${count}`);
        }
        let below = 0;
        series.buckets.forEach((n, i) => {
          below += n;
          latency.push(
            `${name}_bucket{le="${BUCKETS[i]}",${series.labels}} ${below}`,
          );
        });
        latency.push(
          `${name}_bucket{le="+Inf",${series.labels}} ${series.count}`,
          `${name}_sum{${series.labels}} ${series.sum}`,
          `${name}_count{${series.labels}} ${series.count}`,
        );
      }
    }
    return `${counts.join('\n')}\n${latency.join('\n')}\n`;
  }
}

/** `name="value",…` with Prometheus's escapes for label values. */
function labelText(labels: Record<string, string>): string {
  return Object.entries(labels)
    .map(([name, value]) => {
      const escaped = value
        .replace(/\\/g, '\\\\')
        .replace(/\n/g, '\\n')
        .replace(/"/g, '\\"');
      return `${name}="${escaped}"`;
    })
    .join(',');
}
