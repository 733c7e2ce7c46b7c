/**
 * A device of the reliability scenarios: the real SDK (`createClient` from
 * `@outpost/client`) in in-page mode, its engine on fake-indexeddb (one IndexedDB factory
 * per device, kept across `restart()` so a device that is closed and reopened finds its
 * data and its outbox, as after a tab reload) and `ws` as its WebSocket.
 *
 * Clock skew goes through the engine's `now` option (the physical clock its hybrid
 * logical clock and its timers read): a device with `skewMs = +300_000` believes it is
 * five minutes later than the relay does, and must correct its offset from the relay's
 * answers instead of being locked out or winning every conflict.
 */
import 'fake-indexeddb/auto'
import { IDBFactory } from 'fake-indexeddb'
import { WebSocket } from 'ws'
import { createClient, type ClientStatus, type OutpostClient } from '@outpost/client'

/** Options of {@link openDevice}. */
export interface DeviceOptions {
  /** Unique per device: the database name. */
  readonly name: string
  /** Where it connects (the fault proxy or the relay). */
  readonly url: string
  /** How far the device's clock is off (ms, positive = ahead). */
  readonly skewMs?: number
  /** Start offline. */
  readonly offline?: boolean
  /** Jitter source of its reconnect backoff (seeded by the scenario). */
  readonly random?: () => number
}

/** A device; `client` is replaced by `restart()`. */
export interface Device {
  readonly name: string
  readonly skewMs: number
  readonly client: OutpostClient
  /** Closes the client (pending writes stay in its IndexedDB) and opens it again on the same data. */
  restart(): Promise<void>
  close(): Promise<void>
}

/**
 * Engine timings shortened for the scenarios (defaults suit phones, not a test): a dead
 * connection is noticed within 1.5 s, an owed reconciliation answer within 3 s, unacked
 * ops are retried every 600 ms, reconnects back off from 100 ms up to 1 s, and each idle
 * shape's root is checked against the relay's every 1.5 s while live (default 30 s), so a
 * change lost inside an open connection is repaired well inside N1's `staleMs`.
 */
export const DEVICE_TIMINGS = Object.freeze({ retryMs: 600, pingMs: 400, deadMs: 1_500, replyTimeoutMs: 3_000, requestTimeoutMs: 5_000, antiEntropyMs: 1_500, backoff: { baseMs: 100, capMs: 1_000 } })

/** Opens a device; see the module comment. */
export function openDevice(options: DeviceOptions): Device {
  const indexedDB = new IDBFactory()
  const skewMs = options.skewMs ?? 0
  const open = (offline: boolean): OutpostClient =>
    createClient({
      name: options.name,
      url: options.url,
      mode: 'in-page',
      offline,
      timeoutMs: 30_000,
      engine: {
        indexedDB,
        WebSocket: WebSocket as never,
        now: () => Date.now() + skewMs,
        ...(options.random === undefined ? {} : { random: options.random }),
        ...DEVICE_TIMINGS,
      },
    })
  let client = open(options.offline ?? false)
  return {
    name: options.name,
    skewMs,
    get client() {
      return client
    },
    restart: async () => {
      await client.close()
      // The engine remembers `setOffline(true)` per database, so the reopened device keeps that choice.
      client = open(false)
      await client.ready()
    },
    close: () => client.close(),
  }
}

/** True when the device is live with nothing left to send. */
export function isSettled(status: ClientStatus): boolean {
  return status.connection === 'live' && status.pendingWrites === 0
}
