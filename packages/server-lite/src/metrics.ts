/**
 * Prometheus metrics of one relay, on a registry of its own (several relays may run in
 * one process, e.g. in tests), served at `GET /metrics`.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import { CLOSE_LABEL_VALUES } from './connection-log'

/** The relay's metrics. */
export interface RelayMetrics {
  readonly registry: Registry
  readonly connections: Gauge
  /** Connections ended (closed or refused), by a reason label derived from the close code (see connection-log.ts). */
  readonly connectionCloses: Counter<'reason'>
  readonly opsIn: Counter
  readonly opsOut: Counter
  readonly acks: Counter
  readonly bytesIn: Counter
  readonly bytesOut: Counter
  readonly commitSeconds: Histogram
  readonly reconcileRounds: Counter
  readonly errors: Counter<'code'>
  /** Topic messages published (each counted once, however many sessions it reached). */
  readonly topicMessages: Counter
  /** Lock leases granted (acquire; extensions are not counted). */
  readonly lockGrants: Counter
  /** Time from lock-acquire to grant. */
  readonly lockWaitSeconds: Histogram
  /** Entry processor invocations by outcome: ok, not_found, forbidden, failed, contended, error. */
  readonly invocations: Counter<'outcome'>
  /** Bus publish → delivery time of messages from other relays (publisher's clock to this relay's). */
  readonly busLagSeconds: Histogram
  /** 1 while the bus is connected (0 without a bus). */
  readonly busConnected: Gauge
  /** Times the bus may have missed messages (reconnects, overruns); each triggers a catch-up from the store. */
  readonly busGaps: Counter
  /** Times the relay-wide budget of queued work (`limits.maxQueuedBytes`) engaged. */
  readonly relayBudgetEngaged: Counter
  /** Reports the relay-wide queue (bytes, frames, connections stopped) at each scrape. */
  watchQueue(source: () => QueueState): void
}

/** The relay-wide queue of received work, as `/metrics` shows it. */
export interface QueueState {
  readonly bytes: number
  readonly frames: number
  readonly peakBytes: number
  readonly pausedConnections: number
}

/** Creates the metrics on a fresh registry; `defaults` adds process metrics (CPU, RSS, event loop). */
export function createMetrics(defaults = true): RelayMetrics {
  const registry = new Registry()
  if (defaults) collectDefaultMetrics({ register: registry })
  const registers = [registry]
  const connectionCloses = new Counter({ name: 'outpost_connection_closes_total', help: 'Connections ended (closed or refused), by reason', labelNames: ['reason'], registers })
  // Every reason appears from the start, so a dashboard's rate() has a series before the first close.
  for (const reason of CLOSE_LABEL_VALUES) connectionCloses.inc({ reason }, 0)
  let queue: () => QueueState = () => ({ bytes: 0, frames: 0, peakBytes: 0, pausedConnections: 0 })
  const queueGauge = (name: string, help: string, read: (state: QueueState) => number): Gauge =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(read(queue()))
      },
    })
  queueGauge('outpost_queued_bytes', 'Bytes of received work queued relay-wide (frames charged with a per-frame overhead)', (q) => q.bytes)
  queueGauge('outpost_queued_bytes_peak', 'The most bytes of received work ever queued relay-wide at once', (q) => q.peakBytes)
  queueGauge('outpost_queued_frames', 'Received frames queued relay-wide (not yet handled, or changes not yet committed)', (q) => q.frames)
  queueGauge('outpost_relay_budget_paused_connections', 'Connections the relay-wide budget has stopped reading', (q) => q.pausedConnections)
  return {
    relayBudgetEngaged: new Counter({ name: 'outpost_relay_budget_engaged_total', help: 'Times the relay-wide budget of queued work (limits.maxQueuedBytes) engaged and stopped reading connections', registers }),
    watchQueue(source) {
      queue = source
    },
    registry,
    connections: new Gauge({ name: 'outpost_connections', help: 'Open client sessions (WebSocket and HTTP fallback)', registers }),
    connectionCloses,
    opsIn: new Counter({ name: 'outpost_ops_in_total', help: 'Changes received in ops batches', registers }),
    opsOut: new Counter({ name: 'outpost_ops_out_total', help: 'Changes sent to clients (slices, reconciliation, fan-out)', registers }),
    acks: new Counter({ name: 'outpost_acks_total', help: 'ops batches acknowledged after commit', registers }),
    bytesIn: new Counter({ name: 'outpost_bytes_in_total', help: 'Frame bytes received', registers }),
    bytesOut: new Counter({ name: 'outpost_bytes_out_total', help: 'Frame bytes sent', registers }),
    commitSeconds: new Histogram({
      name: 'outpost_store_commit_seconds',
      help: 'Latency of store commits (group commits included)',
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    }),
    reconcileRounds: new Counter({ name: 'outpost_reconcile_rounds_total', help: 'Reconciliation requests answered (reconcile and entries)', registers }),
    errors: new Counter({ name: 'outpost_errors_total', help: 'Errors sent to clients, by code', labelNames: ['code'], registers }),
    topicMessages: new Counter({ name: 'outpost_topic_messages_total', help: 'Topic messages published', registers }),
    lockGrants: new Counter({ name: 'outpost_lock_grants_total', help: 'Lock leases granted', registers }),
    busLagSeconds: new Histogram({
      name: 'outpost_bus_lag_seconds',
      help: 'Bus publish to delivery time of messages from other relays',
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    }),
    busConnected: new Gauge({ name: 'outpost_bus_connected', help: '1 while the bus between relays is connected', registers }),
    busGaps: new Counter({ name: 'outpost_bus_gaps_total', help: 'Times the bus may have missed messages (each followed by a catch-up from the store)', registers }),
    lockWaitSeconds: new Histogram({
      name: 'outpost_lock_wait_seconds',
      help: 'Time from lock-acquire to grant',
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60],
      registers,
    }),
    invocations: new Counter({ name: 'outpost_invocations_total', help: 'Entry processor invocations by outcome', labelNames: ['outcome'], registers }),
  }
}
