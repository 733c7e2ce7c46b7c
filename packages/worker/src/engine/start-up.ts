/**
 * Start-up: opens storage — IndexedDB, or memory where the browser refuses it — and
 * restores what the last run left: replica id, clock, the relay's limits, last sync time,
 * the outbox, refused writes, recent call ids, shapes and "work offline". It runs once, on
 * the engine's first call; the facade (`index.ts`) builds the other parts from it.
 */
import { DEFAULT_WIRE_LIMITS, DatabaseLockedError, Hlc, MemoryStore, serializeError, type ReplicaId, type SerializedError, type Shape, type Stamp, type Store, type Value, type WireLimits } from '@outpost/core'
import { OUTBOX_COLLECTION, type Outbox, type OutboxEntry } from '../outbox'
import { REJECTED_META_KEY, type RejectionLog } from '../rejections'
import { IdbStore } from '../store/idb-store'
import type { CallLedger } from './call-ledger'
import type { CreateEngineOptions } from './options'

/** The meta key remembering `setOffline(true)` for this database until `setOffline(false)`. */
export const OFFLINE_META = 'offline'

/** The engine's scalars that several parts read and update: one object, so they all see the same values. */
export interface EngineState {
  /** False while running in memory (no IndexedDB): data is lost when the worker stops. */
  durable: boolean
  /** The relay's frame limits: from the last `welcome` (persisted), else the documented defaults. */
  limits: WireLimits
  /** The newest stamp received from the relay or accepted from this device's own writes: the clock never rebases below it. */
  floor: Stamp | null
  /** When the last reconciliation completed (relay time, ms), or null. */
  lastSyncAt: number | null
  /** The last storage, connection or sync error, for status. */
  lastError: SerializedError | null
}

/** The state of an engine that has not opened its storage yet. */
export function initialState(): EngineState {
  return { durable: false, limits: DEFAULT_WIRE_LIMITS, floor: null, lastSyncAt: null, lastError: null }
}

/** Opens the database's IndexedDB store; where it is refused (private modes), an in-memory one, and says so in `state`. */
export async function openStore(options: CreateEngineOptions, state: EngineState): Promise<Store> {
  const factory = options.indexedDB === undefined ? (globalThis as { indexedDB?: IDBFactory }).indexedDB : options.indexedDB
  if (factory !== null && factory !== undefined) {
    try {
      const store = await IdbStore.open(`outpost:${options.name}`, { indexedDB: factory })
      state.durable = true
      return store
    } catch (error) {
      // Another engine holds the database: running in memory would lose what the app writes.
      if (error instanceof DatabaseLockedError) throw error
      // Private modes refuse IndexedDB: run in memory and say so in status.
      state.lastError = serializeError(error)
    }
  }
  state.durable = false
  return new MemoryStore()
}

/** What the last run left that the other parts are built from. */
export interface Restored {
  readonly replicaId: ReplicaId
  readonly hlc: Hlc
  /** The op id the next local write gets. */
  readonly nextOpId: number
  /** Refused writes older databases kept in the outbox: to be refused properly now. */
  readonly legacyRejected: readonly [number, SerializedError][]
  /** The shapes subscribed when the last run ended. */
  readonly shapes: readonly Shape[]
  /** True when `setOffline(true)` was the last word for this database. */
  readonly offline: boolean
}

/** Where the restored collections go: filled in place, they belong to the engine from its construction. */
export interface RestoreInto {
  readonly state: EngineState
  readonly outbox: Outbox
  readonly rejections: RejectionLog
  readonly calls: CallLedger
}

/** Reads what the last run left in `store` (creating the replica id on first use). */
export async function restore(store: Store, now: () => number, into: RestoreInto): Promise<Restored> {
  const [storedId, last, offset, floor, limits, lastSync, opSeq, rejected, shapes, offline] = await readMeta(store, ['replicaId', 'hlc', 'clockOffset', 'clockFloor', 'wireLimits', 'lastSyncAt', 'opSeq', REJECTED_META_KEY, 'shapes', OFFLINE_META])
  let replicaId = storedId as ReplicaId | undefined
  if (typeof replicaId !== 'string') {
    replicaId = crypto.randomUUID() as ReplicaId
    await store.commit({ meta: [{ key: 'replicaId', value: replicaId }] })
  }
  // `offset`: the last one the relay measured, so offline writes after a restart follow corrected time too.
  const hlc = new Hlc({ replicaId, now, last: typeof last === 'string' ? (last as Stamp) : null, offset: typeof offset === 'number' && Number.isFinite(offset) ? offset : 0 })
  into.state.floor = typeof floor === 'string' ? (floor as Stamp) : null
  if (isWireLimits(limits)) into.state.limits = limits
  into.state.lastSyncAt = typeof lastSync === 'number' ? lastSync : null
  let nextOpId = (typeof opSeq === 'number' ? opSeq : 0) + 1
  into.rejections.load(rejected)
  const legacyRejected: [number, SerializedError][] = []
  for (const { value } of await store.scan(OUTBOX_COLLECTION)) {
    const entry = value as unknown as OutboxEntry
    into.outbox.add(entry)
    nextOpId = Math.max(nextOpId, entry.opId + 1)
    if (entry.error !== undefined) legacyRejected.push([entry.opId, entry.error])
  }
  await into.calls.load(store, now())
  return { replicaId, hlc, nextOpId, legacyRejected, shapes: Array.isArray(shapes) ? (shapes as unknown as Shape[]) : [], offline: offline === true }
}

/** The meta values under `keys`: one IndexedDB transaction, not a round trip each. */
function readMeta(store: Store, keys: readonly string[]): Promise<(Value | undefined)[]> {
  return store instanceof IdbStore ? store.getMetaMany(keys) : Promise.all(keys.map((key) => store.getMeta(key)))
}

function isWireLimits(value: unknown): value is WireLimits {
  const v = value as Partial<WireLimits> | undefined
  return typeof v === 'object' && v !== null && Number.isInteger(v.maxFrameBytes) && Number.isInteger(v.maxElements)
}
