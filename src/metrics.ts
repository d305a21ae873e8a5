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

/** Sources read at scrape time. */
export interface MetricSources {
  readonly balances: () => Balance[];
  readonly replay: () => ReplayGuardStats;
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
}

const REPLAY_LAYERS: readonly ReplayLayer[] = ['in_flight', 'cache', 'store'];

/** Latency buckets in seconds: auth decisions live in the low ms. */
const BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
];

export class Metrics {
  readonly registry = new client.Registry();
  readonly #decisions: client.Counter<'protocol' | 'outcome' | 'reason'>;
  readonly #latency: client.Histogram<'protocol' | 'outcome'>;
  readonly #mintRequests: client.Counter<'mint' | 'operation' | 'outcome'>;
  readonly #mintLatency: client.Histogram<'mint' | 'operation'>;
  readonly #provisioning: client.Counter<'outcome'>;

  constructor(sources: MetricSources) {
    const registers = [this.registry];
    client.collectDefaultMetrics({
      register: this.registry,
      prefix: 'paygress_',
    });

    this.#decisions = new client.Counter({
      name: 'paygress_decisions_total',
      help: 'Decisions by protocol, outcome (allow, deny) and reason code.',
      labelNames: ['protocol', 'outcome', 'reason'],
      registers,
    });
    this.#latency = new client.Histogram({
      name: 'paygress_decision_duration_seconds',
      help: 'Time from request to decision, mint round trips included.',
      labelNames: ['protocol', 'outcome'],
      buckets: BUCKETS,
      registers,
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
    this.#decisions.inc({
      protocol: request.protocol,
      outcome: decision.kind,
      reason,
    });
    this.#latency.observe(
      { protocol: request.protocol, outcome: decision.kind },
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

  /** The text exposition for `/metrics`. */
  async render(): Promise<{ contentType: string; body: string }> {
    return {
      contentType: this.registry.contentType,
      body: await this.registry.metrics(),
    };
  }
}
