/**
 * The relay's side of the bus: which bus `config.bus` names, and what flows through it.
 *
 * - After each commit the relay publishes one batch of hints (`{ map, seq }` per map it
 *   changed); another relay that holds one of those maps reads its change log from its own
 *   head (`SyncService.hinted` → `catchUp`). The store stays the truth: a lost hint costs
 *   time, never data, because a bus that may have missed messages says so (`reconnected`,
 *   `overrun`) and the relay then catches up every map it holds, and the poll every
 *   `pollMs` catches what is left.
 * - Topic messages (see `primitives/topics.ts`), and so presence, which is built on them.
 * - `lock-released` events: a lease ended on one relay, so waiters on the others try at once
 *   instead of at their next retry.
 *
 * A publish that fails (the bus is down) is logged and dropped: hints are re-derived from
 * the store, topic messages are ephemeral, lock waiters retry on their own.
 */
import type { Bus, BusStatusEvent } from '@outpost/core'
import type { Logger } from 'pino'
import type { RelayConfig } from '../config'
import type { RelayMetrics } from '../metrics'
import type { LockService } from '../primitives/locks'
import type { SyncService } from '../sync/sync-service'
import { PostgresBus } from './postgres-bus'
import { RedisBus } from './redis-bus'

/** The event channel of lock releases. */
export const LOCK_RELEASED = 'lock-released'

/** Opens the bus `config.bus` names, or resolves to undefined for `none`. */
export async function openBus(config: RelayConfig, now: () => number): Promise<Bus | undefined> {
  // A bus message carries at most one client frame (a topic message) plus its envelope.
  const maxMessageBytes = config.limits.maxFrameBytes + 4096
  if (config.bus === 'none' || config.store === 'lmdb') return undefined
  if (config.bus === 'postgres') {
    // The relay polls the store itself (pollMs), for every bus: the bus's own poll stays off.
    return PostgresBus.open({ connectionString: config.store, schema: config.storeSchema, pollIntervalMs: 0, maxMessageBytes, now })
  }
  return RedisBus.open({ url: config.bus, keyPrefix: `outpost:${config.storeSchema}:`, maxMessageBytes, now })
}

/** What {@link attachBus} connects. */
export interface BusParts {
  readonly bus: Bus
  readonly sync: SyncService
  readonly locks: LockService
  readonly metrics: RelayMetrics
  readonly logger: Logger
}

/** Connects the relay's parts to the bus (topics are given the bus when the hub is made); returns the hint publisher. */
export function attachBus({ bus, sync, locks, metrics, logger }: BusParts): (hints: readonly { map: string; seq: number }[]) => void {
  bus.onHints((hints) => sync.hinted(hints))
  bus.subscribeEvents(LOCK_RELEASED, (event) => {
    if (typeof event.value === 'string') locks.released(event.value)
  })
  bus.onLag((lagMs) => metrics.busLagSeconds.observe(Math.max(0, lagMs) / 1000))
  bus.onStatus((event: BusStatusEvent) => {
    metrics.busConnected.set(bus.health().connected ? 1 : 0)
    switch (event.type) {
      case 'disconnected':
        logger.warn({ bus: bus.name, reason: event.reason }, 'bus connection lost; other relays\' changes now arrive by polling the store')
        return
      case 'reconnected':
      case 'overrun':
        metrics.busGaps.inc()
        logger.warn({ bus: bus.name, event: event.type }, 'the bus may have missed messages: catching up every watched map from the store')
        sync.poll().catch((error: unknown) => logger.error({ err: error }, 'catching up after a bus gap failed'))
        return
      case 'listener-error':
        logger.error({ err: event.error }, 'a bus listener failed')
    }
  })
  metrics.busConnected.set(bus.health().connected ? 1 : 0)
  return (hints) => {
    bus.publishHints(hints).catch((error: unknown) => logger.warn({ err: error }, 'commit hints not published on the bus; other relays will find the changes by polling'))
  }
}

/** Tells other relays a lease of `name` ended. */
export function announceRelease(bus: Bus, logger: Logger, name: string): void {
  bus.publishEvent({ channel: LOCK_RELEASED, value: name }).catch((error: unknown) => logger.warn({ err: error, lock: name.slice(0, 256) }, 'lock release not announced on the bus; waiters elsewhere retry on their own'))
}
