/**
 * The engine that owns the data: storage (IndexedDB pages, or memory), the outbox, the
 * in-memory maps live queries run on, shape replicas, and the sync client. It implements
 * {@link EngineApi}; `expose.ts` puts it behind comlink.
 *
 * ## Write path
 * A local write is queued to the single committer, which (one transaction at a time)
 * computes the new merged state from memory, commits record page + outbox entry + clock
 * in ONE store transaction, then merges into memory, updates shape trees and live
 * queries (every tab), resolves the caller, and hands the op to the sync client. Remote
 * changes merge into memory at once (live queries update) and are flushed to the store
 * in large batches (see {@link REMOTE_FLUSH_RECORDS}), so an initial sync writes few, big
 * transactions. Because every store write is built from the current memory state by the
 * one committer, a later flush can never overwrite a newer local write.
 *
 * ## Memory
 * A map is loaded into memory on first use (one bulk read of its pages). Each write costs
 * O(log n) per live query (core's incremental `QueryView`) plus O(Merkle depth) per shape:
 * no whole-map snapshot per write or per notification.
 */
import {
  COUNTERS_MAP,
  DEFAULT_WIRE_LIMITS,
  Hlc,
  MemoryStore,
  NotFoundError,
  QueryView,
  StoreError,
  assertKey as checkKey,
  assertMapName as checkMapName,
  assertRecord,
  assertValue,
  assertChangeFits,
  counterAddState,
  counterValue,
  isOutpostError,
  lwwDeleteState,
  lwwMaxStamp,
  lwwSetState,
  lwwUpdateState,
  lwwView,
  mergeState,
  orAddState,
  orRemoveState,
  orValues,
  ownPart,
  withoutWrite,
  restampState,
  maxStamp as laterStamp,
  stampsOf,
  serializeError,
  stateEquals,
  validateQuery,
  validateShape,
  type Change,
  type CollectionKind,
  type LockLostMessage,
  type TopicMessage,
  type CounterState,
  type LwwRecordState,
  type OrSetState,
  type RecordValue,
  type ReplicaId,
  type SerializedError,
  type Shape,
  type Stamp,
  type Store,
  type StoreEntry,
  type Value,
  type WireLimits,
} from '@outpost/core'
import type {
  EngineApi,
  EngineOptions,
  EngineStatus,
  LeaseInfo,
  LeaseLostReason,
  LockStatus,
  PublishReceipt,
  QuerySpec,
  Result,
  Row,
  TopicEvent,
  WriteConcern,
  WriteReceipt,
  WriteRejection,
} from './engine-api'
import { Coordinator } from './coordination/coordinator'
import { OUTBOX_COLLECTION, Outbox, outboxKey, type OutboxEntry } from './outbox'
import { REJECTED_META_KEY, RejectionLog } from './rejections'
import { clockFloor, restampEntries } from './restamp'
import { IdbStore } from './store/idb-store'
import { ShapeReplica, type AnyState } from './sync/shape-replica'
import { SyncClient, type NetworkEvents, type SyncHost, type WebSocketConstructor } from './sync/sync-client'
import type { BackoffOptions } from './sync/connection-state'

/** Remote changes buffered in memory before they are flushed to the store in one transaction. */
export const REMOTE_FLUSH_RECORDS = 50_000
/** How long (ms) after the last remote batch buffered changes are flushed. */
export const REMOTE_FLUSH_DELAY_MS = 40
/** Longest (ms) a remote change stays only in memory while changes keep streaming in. */
export const REMOTE_FLUSH_MAX_WAIT_MS = 2_000

/** The meta key remembering `setOffline(true)` for this database until `setOffline(false)`. */
const OFFLINE_META = 'offline'

/** Options of {@link createEngine}. */
export interface CreateEngineOptions extends EngineOptions {
  /** IndexedDB factory (default: global `indexedDB`); `null` forces the in-memory store. */
  readonly indexedDB?: IDBFactory | null
  /** WebSocket constructor (default: global `WebSocket`), e.g. the `ws` package in Node. */
  readonly WebSocket?: WebSocketConstructor
  /** Physical clock (ms). */
  readonly now?: () => number
  /** Randomness in [0, 1) for backoff jitter. */
  readonly random?: () => number
  /** Initial auth token. */
  readonly token?: string
  /** Outbox retry interval (ms) for sent but unacknowledged ops. */
  readonly retryMs?: number
  /** Keep-alive ping interval (ms). */
  readonly pingMs?: number
  /** Silence (ms) after which the relay connection is treated as dead and replaced (default 10 s). */
  readonly deadMs?: number
  /** How long (ms) an owed reconciliation reply may make no progress before the session restarts (default 30 s). */
  readonly replyTimeoutMs?: number
  /** Reconnect backoff. */
  readonly backoff?: BackoffOptions
  /** Source of `online` events (defaults to the global scope); a backing-off connection retries when the network returns. */
  readonly networkEvents?: NetworkEvents
  /** Start offline (no connection until `setOffline(false)`); also the case when `setOffline(true)` was the last word for this database. */
  readonly startOffline?: boolean
  /** Bound (ms) on the relay's answer to a topic publish, lock or invoke request (a lock's `wait` is added). */
  readonly requestTimeoutMs?: number
}

/** The engine: {@link EngineApi} plus lifecycle and introspection for hosts and tests. */
export interface Engine extends EngineApi {
  /** Stops syncing, closes storage. Pending writes stay in the outbox for the next start. */
  close(): Promise<void>
  /** This database's replica id (after `ready()`). */
  readonly replicaId: ReplicaId | undefined
  /** The underlying store (after `ready()`), for tests and benchmarks. @internal */
  readonly store: Store | undefined
  /** Records merged from the relay since start. @internal */
  readonly receivedRecords: number
  /** Frames and op changes sent to the relay since start (all connections). @internal */
  readonly syncStats: { readonly framesSent: number; readonly opsChangesSent: number }
  /** Resolves when every queued write and buffered remote change is in the store. @internal */
  flush(): Promise<void>
}

interface LoadedMap {
  readonly kind: CollectionKind
  readonly map: string
  readonly collection: string
  readonly states: Map<string, AnyState>
}

/**
 * Where the ids of recent write calls are kept, in the transaction of the write itself,
 * so a call retried after its answer was lost (a leader tab closed mid-call) is recognised
 * even by the next engine. Entries older than {@link CALL_MEMORY_MS} are pruned at open.
 */
const CALLS_COLLECTION = 'calls'
/** How long a write call id is remembered: far longer than any retry of a lost answer. */
const CALL_MEMORY_MS = 60 * 60_000
/** At most this many call ids are kept in memory. */
const MAX_REMEMBERED_CALLS = 10_000

/** A local write as the app made it: the delta is built from the key's current state. */
interface LocalWrite {
  readonly kind: CollectionKind
  readonly map: string
  readonly key: string
  /** Builds the delta from the key's current state (in memory, optimistic writes included). */
  readonly makeDelta: (current: AnyState | undefined) => AnyState
}

/** A local write applied to memory and waiting for its IndexedDB commit. */
interface LocalOp {
  readonly kind: CollectionKind
  readonly map: string
  readonly key: string
  readonly delta: AnyState
  /** The caller's id for this write, recorded with it so a retried call is answered, not repeated. */
  readonly callId: string | undefined
  /** The clock offset the delta's stamps were made under (see `restamp.ts`). */
  readonly offset: number
  resolve(receipt: WriteReceipt): void
  reject(error: unknown): void
}

interface QuerySub {
  readonly map: string
  readonly view: QueryView
  readonly onRows: (rows: readonly Row[]) => void
}

interface ValueSub {
  readonly kind: CollectionKind
  readonly map: string
  readonly key: string
  readonly onValue: (value: never) => void
}

const ok = <T>(value: T): Result<T> => ({ ok: true, value })
const fail = (error: unknown): Result<never> => ({ ok: false, error: serializeError(error) })

function collectionOf(kind: CollectionKind, map: string): string {
  return `r/${kind}/${map}`
}

function parseCollection(collection: string): { kind: CollectionKind; map: string } | undefined {
  const m = /^r\/(lww|or|counter)\/(.*)$/s.exec(collection)
  return m === null ? undefined : { kind: m[1] as CollectionKind, map: m[2] as string }
}

function mapKey(kind: CollectionKind, map: string, key: string): string {
  return `${kind}\u0000${map}\u0000${key}`
}

/** The store could not be read while undoing a failed commit: the key is dropped from memory and reloads on next use. */
function onRollBackReadError(error: unknown): void {
  if (typeof console !== 'undefined') console.warn('[outpost] could not re-read a key after a failed commit; it reloads from storage on next use', error)
}

/** The relay's limits could not be remembered: offline writes after a restart use the defaults until the next welcome. */
function onMetaWriteError(error: unknown): void {
  if (typeof console !== 'undefined') console.warn('[outpost] could not store the relay limits; the defaults apply offline until the next connection', error)
}

function isWireLimits(value: unknown): value is WireLimits {
  const v = value as Partial<WireLimits> | undefined
  return typeof v === 'object' && v !== null && Number.isInteger(v.maxFrameBytes) && Number.isInteger(v.maxElements)
}

/** Reports an error from an app callback (e.g. a closed tab's proxy) without disturbing other subscribers. */
function onCallbackError(error: unknown): void {
  if (typeof console !== 'undefined') console.warn('[outpost] a subscriber callback failed; other subscribers are unaffected', error)
}

function safeCall<T>(fn: (value: T) => unknown, value: T): void {
  try {
    const r = fn(value)
    if (r instanceof Promise) r.catch(onCallbackError)
  } catch (error) {
    onCallbackError(error)
  }
}

/** Creates an engine; storage opens on the first call (or `ready()`). */
export function createEngine(options: CreateEngineOptions): Engine {
  return new EngineImpl(options)
}

class EngineImpl implements Engine, SyncHost {
  readonly #options: CreateEngineOptions
  readonly #now: () => number
  #store: Store | undefined
  #durable = false
  #opening: Promise<void> | undefined
  #closed = false
  #hlc: Hlc | undefined
  #replicaId: ReplicaId | undefined
  readonly #maps = new Map<string, LoadedMap>()
  readonly #loading = new Map<string, Promise<LoadedMap>>()
  readonly #outbox = new Outbox()
  readonly #rejections = new RejectionLog()
  #nextOpId = 1
  readonly #shapes = new Map<string, ShapeReplica>()
  #lastSyncAt: number | null = null
  #lastError: SerializedError | null = null
  /** The relay's frame limits: from the last `welcome` (persisted), else the documented defaults. */
  #limits: WireLimits = DEFAULT_WIRE_LIMITS
  /** The newest stamp received from the relay or accepted from this device's own writes: the clock never rebases below it. */
  #floor: Stamp | null = null

  // Committer
  /** Store work that must not interleave with local commits (rejections, re-stamping), run one at a time by the committer. */
  readonly #jobs: (() => Promise<void>)[] = []
  readonly #pendingLocal: LocalOp[] = []
  readonly #dirty = new Map<string, { collection: string; key: string }>()
  /** Filtered-shape membership changes waiting for the next flush: collection\0key → present. */
  readonly #memberDirty = new Map<string, { collection: string; key: string; present: boolean }>()
  #committing = false
  #flushTimer: ReturnType<typeof setTimeout> | undefined
  #flushRequested = false
  #firstDirtyAt = 0
  /** lastSyncAt changed and is not stored yet. */
  #metaDirty = false
  #idle: (() => void)[] = []

  // Subscribers
  #nextSubId = 1
  readonly #querySubs = new Map<number, QuerySub>()
  readonly #valueSubs = new Map<number, ValueSub>()
  readonly #statusSubs = new Map<number, (status: EngineStatus) => void>()
  readonly #dirtyQueries = new Set<number>()
  #notifyScheduled = false
  readonly #writeWatchers = new Map<number, ((event: WriteConcern | WriteRejection) => void)[]>()
  readonly #sentOps = new Set<number>()
  #statusScheduled = false

  #sync: SyncClient | undefined
  #receivedRecords = 0
  #coordinator: Coordinator | undefined
  /** Counters whose collection is already replicated from the relay. */
  #countersReplicated = false
  /** Write call ids seen recently (persisted in CALLS_COLLECTION), with their receipts. */
  readonly #calls = new Map<string, Promise<WriteReceipt>>()

  constructor(options: CreateEngineOptions) {
    this.#options = options
    this.#now = options.now ?? Date.now
  }

  get replicaId(): ReplicaId | undefined {
    return this.#replicaId
  }

  get store(): Store | undefined {
    return this.#store
  }

  get receivedRecords(): number {
    return this.#receivedRecords
  }

  get syncStats(): { readonly framesSent: number; readonly opsChangesSent: number } {
    return { framesSent: this.#sync?.framesSent ?? 0, opsChangesSent: this.#sync?.opsChangesSent ?? 0 }
  }

  // ───────────────────────────── start-up ─────────────────────────────

  #open(): Promise<void> {
    this.#opening ??= this.#doOpen()
    return this.#opening
  }

  async #doOpen(): Promise<void> {
    const factory = this.#options.indexedDB === undefined ? (globalThis as { indexedDB?: IDBFactory }).indexedDB : this.#options.indexedDB
    if (factory !== null && factory !== undefined) {
      try {
        this.#store = await IdbStore.open(`outpost:${this.#options.name}`, { indexedDB: factory })
        this.#durable = true
      } catch (error) {
        // Private modes refuse IndexedDB: run in memory and say so in status.
        this.#lastError = serializeError(error)
      }
    }
    if (this.#store === undefined) {
      this.#store = new MemoryStore()
      this.#durable = false
    }
    const store = this.#store
    let replicaId = (await store.getMeta('replicaId')) as ReplicaId | undefined
    if (typeof replicaId !== 'string') {
      replicaId = crypto.randomUUID() as ReplicaId
      await store.commit({ meta: [{ key: 'replicaId', value: replicaId }] })
    }
    this.#replicaId = replicaId
    const last = await store.getMeta('hlc')
    // The last offset the relay measured: offline writes after a restart follow corrected time too.
    const offset = await store.getMeta('clockOffset')
    this.#hlc = new Hlc({ replicaId, now: this.#now, last: typeof last === 'string' ? (last as Stamp) : null, offset: typeof offset === 'number' && Number.isFinite(offset) ? offset : 0 })
    const floor = await store.getMeta('clockFloor')
    this.#floor = typeof floor === 'string' ? (floor as Stamp) : null
    const limits = await store.getMeta('wireLimits')
    if (isWireLimits(limits)) this.#limits = limits
    const lastSync = await store.getMeta('lastSyncAt')
    this.#lastSyncAt = typeof lastSync === 'number' ? lastSync : null
    const opSeq = await store.getMeta('opSeq')
    this.#nextOpId = (typeof opSeq === 'number' ? opSeq : 0) + 1
    this.#rejections.load(await store.getMeta(REJECTED_META_KEY))
    const legacyRejected: [number, SerializedError][] = []
    for (const { value } of await store.scan(OUTBOX_COLLECTION)) {
      const entry = value as unknown as OutboxEntry
      this.#outbox.add(entry)
      this.#nextOpId = Math.max(this.#nextOpId, entry.opId + 1)
      if (entry.error !== undefined) legacyRejected.push([entry.opId, entry.error])
    }
    await this.#loadCalls(store)
    const shapes = await store.getMeta('shapes')
    if (Array.isArray(shapes)) {
      for (const shape of shapes) await this.#addShape(shape as unknown as Shape)
    }
    this.#sync = new SyncClient(this, {
      url: this.#options.url,
      WebSocket: this.#options.WebSocket,
      now: this.#now,
      random: this.#options.random ?? Math.random,
      token: this.#options.token,
      retryMs: this.#options.retryMs,
      pingMs: this.#options.pingMs,
      deadMs: this.#options.deadMs,
      replyTimeoutMs: this.#options.replyTimeoutMs,
      authRequired: this.#options.authRequired,
      backoff: this.#options.backoff,
      networkEvents: this.#options.networkEvents,
    })
    const engine = this
    this.#coordinator = new Coordinator(
      {
        get sync() {
          return engine.#sync
        },
        replicaId,
        serverNow: () => this.#now() + (this.#hlc?.offset ?? 0),
        call: safeCall,
      },
      this.#options.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: this.#options.requestTimeoutMs },
    )
    // Older databases kept refused writes in the outbox: refuse them properly now (log, take back).
    if (legacyRejected.length > 0) await this.acked([], legacyRejected)
    // "Work offline" is remembered per database: a reload, a new tab or a restarted worker stays offline.
    if (this.#options.startOffline === true || (await store.getMeta(OFFLINE_META)) === true) this.#sync.setOffline(true)
    this.#sync.start()
  }

  async #ensureMap(kind: CollectionKind, map: string): Promise<LoadedMap> {
    const collection = collectionOf(kind, map)
    const loaded = this.#maps.get(collection)
    if (loaded !== undefined) return loaded
    let loading = this.#loading.get(collection)
    if (loading === undefined) {
      loading = this.#loadMap(kind, map, collection)
      this.#loading.set(collection, loading)
    }
    return loading
  }

  async #loadMap(kind: CollectionKind, map: string, collection: string): Promise<LoadedMap> {
    const store = this.#store as Store
    const states = new Map<string, AnyState>()
    if (store instanceof IdbStore) {
      for (const [key, value] of await store.loadCollection(collection)) states.set(key, value as unknown as AnyState)
    } else {
      for (const { key, value } of await store.scan(collection)) states.set(key, value as unknown as AnyState)
    }
    const loaded: LoadedMap = { kind, map, collection, states }
    this.#maps.set(collection, loaded)
    this.#loading.delete(collection)
    for (const shape of this.#shapes.values()) {
      if (shape.shape.map !== map) continue
      for (const [key, state] of states) shape.track(kind, map, key, state)
    }
    return loaded
  }

  async #addShape(shape: Shape): Promise<ShapeReplica> {
    const replica = new ShapeReplica(shape)
    const existing = this.#shapes.get(replica.id)
    if (existing !== undefined) return existing
    const store = this.#store as Store
    if (replica.filtered) {
      for (const { key } of await store.scan(replica.membersCollection)) replica.members.add(key)
    }
    this.#shapes.set(replica.id, replica)
    for (const kind of ['lww', 'or', 'counter'] as const) {
      const loaded = this.#maps.get(collectionOf(kind, shape.map))
      if (loaded !== undefined) for (const [key, state] of loaded.states) replica.track(kind, shape.map, key, state)
      else if (kind === 'lww') await this.#ensureMap(kind, shape.map)
    }
    return replica
  }

  // ───────────────────────────── the committer ─────────────────────────────

  /** Loads the recent write call ids, pruning those past {@link CALL_MEMORY_MS}. */
  async #loadCalls(store: Store): Promise<void> {
    const horizon = this.#now() - CALL_MEMORY_MS
    const stale: { collection: string; key: string }[] = []
    let after: string | undefined
    for (;;) {
      const page = await store.scan(CALLS_COLLECTION, after === undefined ? { limit: 1000 } : { after, limit: 1000 })
      for (const { key, value } of page) {
        const call = value as { opId?: unknown; at?: unknown }
        if (typeof call.opId !== 'number' || typeof call.at !== 'number' || call.at < horizon) stale.push({ collection: CALLS_COLLECTION, key })
        else this.#calls.set(key, Promise.resolve({ opId: call.opId }))
      }
      if (page.length < 1000) break
      after = page[page.length - 1]?.key
    }
    if (stale.length > 0) await store.commit({ deletes: stale })
  }

  /**
   * Applies a local write to memory at once — live queries in every tab see it without
   * waiting for IndexedDB (optimistic, as DESIGN §3 asks) — and queues its commit. The
   * returned promise (the app's `await`) still resolves only once the record and its
   * outbox entry are durable; if that commit fails, memory is rolled back to the store.
   */
  #enqueue(write: LocalWrite, callId: string | undefined): Promise<WriteReceipt> {
    if (callId !== undefined) {
      // A retried call (e.g. re-sent to a new leader tab after the old one closed unanswered)
      // gets the first call's receipt: a counter increment never counts twice.
      const earlier = this.#calls.get(callId)
      if (earlier !== undefined) return earlier
    }
    const loaded = this.#maps.get(collectionOf(write.kind, write.map)) as LoadedMap
    const current = loaded.states.get(write.key)
    const delta = write.makeDelta(current)
    // Refused before anything is stored: a change (or a record) that could never be sent
    // would otherwise sit in the outbox forever and hold its map's subscribers hostage.
    const where = `${write.map}/${write.key.slice(0, 64)}`
    assertChangeFits({ kind: write.kind, map: write.map, key: write.key, state: delta } as Change, this.#limits, where)
    if (current !== undefined) {
      const merged = mergeState(write.kind, current as never, delta as never)
      assertChangeFits({ kind: write.kind, map: write.map, key: write.key, state: merged } as Change, this.#limits, `the record ${where} after this write`)
    }
    this.#mergeIntoMemory(loaded, write.key, delta)
    this.#scheduleNotify()
    const receipt = new Promise<WriteReceipt>((resolve, reject) => {
      this.#pendingLocal.push({ kind: write.kind, map: write.map, key: write.key, delta, callId, offset: (this.#hlc as Hlc).offset, resolve, reject })
      this.#pump()
    })
    if (callId !== undefined) {
      this.#calls.set(callId, receipt)
      receipt.catch(() => this.#calls.delete(callId))
      // Bounded: the oldest ids go first (they are also in the store until pruned at open).
      if (this.#calls.size > MAX_REMEMBERED_CALLS) this.#calls.delete(this.#calls.keys().next().value as string)
    }
    return receipt
  }

  #pump(): void {
    if (this.#committing || this.#closed) return
    // Local writes queued before a job commit first: a re-stamping job must see them in the outbox.
    if (this.#pendingLocal.length > 0) {
      this.#committing = true
      void this.#commitLocal().finally(() => {
        this.#committing = false
        this.#pump()
      })
    } else if (this.#jobs.length > 0) {
      const job = this.#jobs.shift() as () => Promise<void>
      this.#committing = true
      void job().finally(() => {
        this.#committing = false
        this.#pump()
      })
    } else if (this.#flushRequested && (this.#dirty.size > 0 || this.#memberDirty.size > 0 || this.#metaDirty)) {
      this.#flushRequested = false
      this.#committing = true
      void this.#flushRemote().finally(() => {
        this.#committing = false
        this.#pump()
      })
    } else {
      const idle = this.#idle
      this.#idle = []
      for (const resolve of idle) resolve()
    }
  }

  /** Runs `work` in the committer, after queued local writes and before later ones; resolves (or rejects) with it. */
  #job<T>(work: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#jobs.push(() => work().then(resolve, reject))
      this.#pump()
    })
  }

  /** Resolves when every queued write and buffered remote change is in the store. */
  #settle(): Promise<void> {
    this.#flushRequested = true
    return new Promise((resolve) => {
      this.#idle.push(resolve)
      this.#pump()
    })
  }

  async #commitLocal(): Promise<void> {
    const ops = this.#pendingLocal.splice(0)
    const store = this.#store as Store
    const hlc = this.#hlc as Hlc
    const touched = new Map<string, { op: LocalOp; loaded: LoadedMap }>()
    const results: { op: LocalOp; entry: OutboxEntry }[] = []
    const puts: StoreEntry[] = []
    const memberPuts: { shape: ShapeReplica; op: LocalOp; loaded: LoadedMap }[] = []
    let opId = this.#nextOpId
    const at = this.#now()
    for (const op of ops) {
      const loaded = this.#maps.get(collectionOf(op.kind, op.map)) as LoadedMap
      const entry: OutboxEntry = { opId: opId++, change: { kind: op.kind, map: op.map, key: op.key, state: op.delta } as Change, at, offset: op.offset }
      results.push({ op, entry })
      touched.set(mapKey(op.kind, op.map, op.key), { op, loaded })
      puts.push({ collection: OUTBOX_COLLECTION, key: outboxKey(entry.opId), value: entry as unknown as Value })
      if (op.callId !== undefined) puts.push({ collection: CALLS_COLLECTION, key: op.callId, value: { opId: entry.opId, at } })
    }
    for (const { op, loaded } of touched.values()) {
      // Memory already holds every queued write (and any remote merge) for this key.
      const state = loaded.states.get(op.key)
      if (state === undefined) continue
      puts.push({ collection: loaded.collection, key: op.key, value: state as unknown as Value })
      // Filtered shapes learn local writes that match them, in the same transaction.
      for (const shape of this.#shapes.values()) {
        if (shape.shape.map !== op.map || !shape.filtered || shape.members.has(op.key)) continue
        if (shape.matchesLocal(op.kind, state)) {
          memberPuts.push({ shape, op, loaded })
          puts.push({ collection: shape.membersCollection, key: op.key, value: true })
        }
      }
    }
    if (results.length === 0) return
    try {
      await store.commit({
        puts,
        meta: [
          { key: 'opSeq', value: opId - 1 },
          { key: 'hlc', value: hlc.last },
        ],
      })
    } catch (error) {
      await this.#rollBack([...touched.values()].map(({ op, loaded }) => ({ loaded, key: op.key })))
      for (const { op } of results) op.reject(error)
      return
    }
    this.#nextOpId = opId
    for (const { shape, op, loaded } of memberPuts) {
      shape.members.add(op.key)
      // Into the shape's Merkle tree too (with the key's state now, remote merges included):
      // memory took the write before the key was a member, and a key missing from the tree
      // is invisible to reconciliation, so the relay could never move it out.
      shape.track(op.kind, op.map, op.key, loaded.states.get(op.key))
    }
    for (const { entry } of results) this.#outbox.add(entry)
    for (const { op, entry } of results) op.resolve({ opId: entry.opId })
    this.#sync?.outboxChanged()
    this.#scheduleStatus()
  }

  /**
   * A local commit failed (e.g. quota): memory ran ahead of the store, so the touched keys
   * go back to what is durable and live queries show that. A remote change merged into
   * one of them meanwhile is dropped from memory too; the next reconciliation brings it back.
   */
  async #rollBack(keys: readonly { loaded: LoadedMap; key: string }[]): Promise<void> {
    const store = this.#store as Store
    for (const { loaded, key } of keys) {
      let stored: AnyState | undefined
      try {
        stored = (await store.get(loaded.collection, key)) as unknown as AnyState | undefined
      } catch (error) {
        onRollBackReadError(error)
        stored = undefined
      }
      if (stored === undefined) loaded.states.delete(key)
      else loaded.states.set(key, stored)
      this.#keyChanged(loaded, key, stored)
    }
    this.#scheduleNotify()
  }

  async #flushRemote(): Promise<void> {
    const store = this.#store as Store
    const dirty = [...this.#dirty.values()]
    const members = [...this.#memberDirty.values()]
    this.#metaDirty = false
    this.#dirty.clear()
    this.#memberDirty.clear()
    const puts: StoreEntry[] = []
    const deletes: { collection: string; key: string }[] = []
    for (const { collection, key } of dirty) {
      const state = this.#maps.get(collection)?.states.get(key)
      if (state === undefined) deletes.push({ collection, key })
      else puts.push({ collection, key, value: state as unknown as Value })
    }
    for (const { collection, key, present } of members) {
      if (present) puts.push({ collection, key, value: true })
      else deletes.push({ collection, key })
    }
    const meta = this.#lastSyncAt === null ? [] : [{ key: 'lastSyncAt', value: this.#lastSyncAt }]
    try {
      await store.commit({ puts, deletes, meta: [...meta, { key: 'hlc', value: (this.#hlc as Hlc).last }, { key: 'clockFloor', value: this.#floor }] })
    } catch (error) {
      // Keep them dirty: the next flush tries again; memory (and the relay) still hold them.
      for (const d of dirty) this.#dirty.set(`${d.collection}\u0000${d.key}`, d)
      for (const m of members) if (!this.#memberDirty.has(`${m.collection}\u0000${m.key}`)) this.#memberDirty.set(`${m.collection}\u0000${m.key}`, m)
      this.#metaDirty = true
      this.#scheduleFlush()
      this.#lastError = serializeError(error)
      this.#scheduleStatus()
    }
  }

  #markDirty(collection: string, key: string): void {
    if (this.#dirty.size === 0) this.#firstDirtyAt = this.#now()
    this.#dirty.set(`${collection}\u0000${key}`, { collection, key })
  }

  /**
   * Flushes buffered remote changes when the stream pauses ({@link REMOTE_FLUSH_DELAY_MS}
   * after the last batch), when {@link REMOTE_FLUSH_RECORDS} are buffered, or at most
   * {@link REMOTE_FLUSH_MAX_WAIT_MS} after the first, so an initial sync rewrites each
   * page a few times, not once per frame.
   */
  #scheduleFlush(): void {
    if (this.#dirty.size === 0 && this.#memberDirty.size === 0) return
    if (this.#flushTimer !== undefined) clearTimeout(this.#flushTimer)
    this.#flushTimer = undefined
    const waited = this.#now() - this.#firstDirtyAt
    if (this.#dirty.size >= REMOTE_FLUSH_RECORDS || waited >= REMOTE_FLUSH_MAX_WAIT_MS) {
      this.#flushRequested = true
      this.#pump()
      return
    }
    this.#flushTimer = setTimeout(() => {
      this.#flushTimer = undefined
      this.#flushRequested = true
      this.#pump()
    }, Math.min(REMOTE_FLUSH_DELAY_MS, REMOTE_FLUSH_MAX_WAIT_MS - waited))
  }

  #setMember(shape: ShapeReplica, key: string, present: boolean): void {
    if (!shape.filtered || shape.members.has(key) === present) return
    if (present) shape.members.add(key)
    else shape.members.delete(key)
    this.#memberDirty.set(`${shape.membersCollection}\u0000${key}`, { collection: shape.membersCollection, key, present })
  }

  // ───────────────────────────── memory + live queries ─────────────────────────────

  /** Merges `state` into memory; returns true when it changed anything. */
  #mergeIntoMemory(loaded: LoadedMap, key: string, state: AnyState): boolean {
    const current = loaded.states.get(key)
    const merged = current === undefined ? state : mergeState(loaded.kind, current as never, state as never)
    if (current !== undefined && stateEquals(loaded.kind, current as never, merged as never)) return false
    loaded.states.set(key, merged)
    this.#keyChanged(loaded, key, merged)
    return true
  }

  /** Drops a key from memory (move-out / resync): no tombstone, nobody else is told. */
  #dropFromMemory(loaded: LoadedMap, key: string): void {
    if (!loaded.states.delete(key)) return
    this.#keyChanged(loaded, key, undefined)
    this.#markDirty(loaded.collection, key)
  }

  #keyChanged(loaded: LoadedMap, key: string, state: AnyState | undefined): void {
    for (const shape of this.#shapes.values()) if (shape.shape.map === loaded.map) shape.track(loaded.kind, loaded.map, key, state)
    if (loaded.kind === 'lww') {
      const view = state === undefined ? undefined : lwwView(state as LwwRecordState)
      for (const [id, sub] of this.#querySubs) {
        if (sub.map === loaded.map && sub.view.apply(key, view)) this.#dirtyQueries.add(id)
      }
    }
    for (const [id, sub] of this.#valueSubs) {
      if (sub.kind === loaded.kind && sub.map === loaded.map && sub.key === key) this.#dirtyQueries.add(-id)
    }
  }

  #valueOf(kind: CollectionKind, state: AnyState | undefined): unknown {
    switch (kind) {
      case 'lww':
        return state === undefined ? undefined : lwwView(state as LwwRecordState)
      case 'or':
        return state === undefined ? [] : orValues(state as OrSetState)
      case 'counter':
        return state === undefined ? 0 : counterValue(state as CounterState)
    }
  }

  #scheduleNotify(): void {
    if (this.#notifyScheduled || this.#dirtyQueries.size === 0) return
    this.#notifyScheduled = true
    queueMicrotask(() => this.#notify())
  }

  #notify(): void {
    this.#notifyScheduled = false
    const ids = [...this.#dirtyQueries]
    this.#dirtyQueries.clear()
    for (const id of ids) {
      if (id > 0) {
        const sub = this.#querySubs.get(id)
        if (sub !== undefined) safeCall(sub.onRows, sub.view.rows())
      } else {
        const sub = this.#valueSubs.get(-id)
        if (sub === undefined) continue
        const state = this.#maps.get(collectionOf(sub.kind, sub.map))?.states.get(sub.key)
        safeCall(sub.onValue as (v: unknown) => void, this.#valueOf(sub.kind, state))
      }
    }
  }

  #status(): EngineStatus {
    const connection = this.#sync?.state ?? 'offline'
    return {
      mode: this.#options.mode,
      connection,
      online: connection === 'live',
      pendingWrites: this.#outbox.pendingCount,
      oldestPendingMs: this.#outbox.oldestPendingMs(this.#now()),
      lastSyncAt: this.#lastSyncAt,
      durable: this.#durable,
      lastError: this.#lastError,
      rejected: this.#rejections.status(),
    }
  }

  #scheduleStatus(): void {
    if (this.#statusScheduled || this.#statusSubs.size === 0) return
    this.#statusScheduled = true
    queueMicrotask(() => {
      this.#statusScheduled = false
      const status = this.#status()
      for (const fn of this.#statusSubs.values()) safeCall(fn, status)
    })
  }

  // ───────────────────────────── EngineApi ─────────────────────────────

  async #guard<T>(fn: () => Promise<T>): Promise<Result<T>> {
    try {
      if (this.#closed) throw new StoreError('the engine is closed')
      await this.#open()
      return ok(await fn())
    } catch (error) {
      return fail(error)
    }
  }

  ready(): Promise<Result<EngineStatus>> {
    return this.#guard(async () => this.#status())
  }

  set(map: string, key: string, record: RecordValue, callId?: string): Promise<Result<WriteReceipt>> {
    return this.#guard(async () => {
      checkMapName(map)
      checkKey(key)
      assertRecord(record, `${map}/${key}`)
      await this.#ensureMap('lww', map)
      const hlc = this.#hlc as Hlc
      return this.#enqueue({ kind: 'lww', map, key, makeDelta: () => lwwSetState(record, hlc.tick(), hlc.tick()) }, callId)
    })
  }

  update(map: string, key: string, patch: RecordValue, callId?: string): Promise<Result<WriteReceipt>> {
    return this.#guard(async () => {
      checkMapName(map)
      checkKey(key)
      assertRecord(patch, `${map}/${key}`)
      await this.#ensureMap('lww', map)
      const hlc = this.#hlc as Hlc
      return this.#enqueue({ kind: 'lww', map, key, makeDelta: () => lwwUpdateState(patch, hlc.tick()) }, callId)
    })
  }

  delete(map: string, key: string, callId?: string): Promise<Result<WriteReceipt>> {
    return this.#guard(async () => {
      checkMapName(map)
      checkKey(key)
      await this.#ensureMap('lww', map)
      const hlc = this.#hlc as Hlc
      return this.#enqueue({ kind: 'lww', map, key, makeDelta: () => lwwDeleteState(hlc.tick()) }, callId)
    })
  }

  get(map: string, key: string): Promise<Result<RecordValue | undefined>> {
    return this.#guard(async () => {
      checkMapName(map)
      checkKey(key)
      const loaded = await this.#ensureMap('lww', map)
      const state = loaded.states.get(key)
      return state === undefined ? undefined : lwwView(state as LwwRecordState)
    })
  }

  orAdd(map: string, key: string, value: Value, callId?: string): Promise<Result<WriteReceipt>> {
    return this.#guard(async () => {
      checkMapName(map)
      checkKey(key)
      assertValue(value, `${map}/${key}`)
      await this.#ensureMap('or', map)
      const hlc = this.#hlc as Hlc
      return this.#enqueue({ kind: 'or', map, key, makeDelta: () => orAddState(value, hlc.tick()) }, callId)
    })
  }

  orRemove(map: string, key: string, value: Value, callId?: string): Promise<Result<WriteReceipt>> {
    return this.#guard(async () => {
      checkMapName(map)
      checkKey(key)
      assertValue(value, `${map}/${key}`)
      await this.#ensureMap('or', map)
      return this.#enqueue({ kind: 'or', map, key, makeDelta: (current) => orRemoveState((current as OrSetState | undefined) ?? { adds: [], removes: [] }, value) }, callId)
    })
  }

  counterAdd(name: string, delta: number, callId?: string): Promise<Result<WriteReceipt>> {
    return this.#guard(async () => {
      checkKey(name)
      await this.#ensureMap('counter', COUNTERS_MAP)
      const replica = this.#replicaId as ReplicaId
      // Validate now so a bad delta is a typed error before anything is queued.
      counterAddState([], replica, delta)
      await this.#replicateCounters()
      return this.#enqueue({ kind: 'counter', map: COUNTERS_MAP, key: name, makeDelta: (current) => counterAddState((current as CounterState | undefined) ?? [], replica, delta) }, callId)
    })
  }

  subscribeQuery(spec: QuerySpec, onRows: (rows: readonly Row[]) => void): Promise<Result<number>> {
    return this.#guard(async () => {
      checkMapName(spec.map)
      const query = validateQuery({ where: spec.where, orderBy: spec.orderBy, limit: spec.limit })
      const loaded = await this.#ensureMap('lww', spec.map)
      const view = new QueryView(query)
      const rows: Row[] = []
      for (const [key, state] of loaded.states) {
        const value = lwwView(state as LwwRecordState)
        if (value !== undefined) rows.push({ key, value })
      }
      view.load(rows)
      const id = this.#nextSubId++
      this.#querySubs.set(id, { map: spec.map, view, onRows })
      safeCall(onRows, view.rows())
      return id
    })
  }

  async unsubscribeQuery(id: number): Promise<void> {
    // Query and value subscriptions share one id space; either kind ends here.
    this.#querySubs.delete(id)
    this.#valueSubs.delete(id)
    this.#dirtyQueries.delete(id)
    this.#dirtyQueries.delete(-id)
  }

  subscribeRecord(map: string, key: string, onValue: (value: RecordValue | undefined) => void): Promise<Result<number>> {
    return this.#subscribeValue('lww', map, key, onValue as (value: never) => void)
  }

  subscribeValue(kind: Exclude<CollectionKind, 'lww'>, map: string, key: string, onValue: (value: Value) => void): Promise<Result<number>> {
    return this.#subscribeValue(kind, map, key, onValue as (value: never) => void)
  }

  #subscribeValue(kind: CollectionKind, mapOrCounter: string, orKey: string, onValue: (value: never) => void): Promise<Result<number>> {
    return this.#guard(async () => {
      checkMapName(mapOrCounter)
      // Every counter is a key of the one counters collection (see COUNTERS_MAP).
      const [map, key] = kind === 'counter' ? [COUNTERS_MAP, mapOrCounter] : [mapOrCounter, orKey]
      checkKey(key)
      const loaded = await this.#ensureMap(kind, map)
      if (kind === 'counter') await this.#replicateCounters()
      const id = this.#nextSubId++
      this.#valueSubs.set(id, { kind, map, key, onValue })
      safeCall(onValue as (v: unknown) => void, this.#valueOf(kind, loaded.states.get(key)))
      return id
    })
  }

  subscribeShape(shape: Shape): Promise<Result<string>> {
    return this.#guard(async () => {
      const valid = validateShape(shape)
      const replica = await this.#addShape(valid)
      await this.#persistShapes()
      this.#sync?.shapeAdded(replica)
      return replica.id
    })
  }

  async unsubscribeShape(id: string): Promise<void> {
    const replica = this.#shapes.get(id)
    if (replica === undefined) return
    this.#shapes.delete(id)
    this.#sync?.shapeRemoved(replica)
    await this.#persistShapes()
  }

  /**
   * A counter is only useful shared: the first time any counter is used, the counters
   * collection is replicated (one shape `{ map: COUNTERS_MAP }` for all of them, persisted
   * like any shape, so a thousand counters cost one subscription) and increments made
   * elsewhere arrive here.
   */
  async #replicateCounters(): Promise<void> {
    if (this.#options.url === undefined || this.#countersReplicated) return
    this.#countersReplicated = true
    const replica = await this.#addShape(validateShape({ map: COUNTERS_MAP }))
    await this.#persistShapes()
    this.#sync?.shapeAdded(replica)
  }

  async #persistShapes(): Promise<void> {
    const shapes = [...this.#shapes.values()].map((s) => s.shape as unknown as Value)
    await (this.#store as Store).commit({ meta: [{ key: 'shapes', value: shapes }] })
  }

  async watchWrite(opId: number, onProgress: (event: WriteConcern | WriteRejection) => void): Promise<void> {
    await this.#open()
    if (this.#outbox.get(opId) === undefined) {
      const refused = this.#rejections.errorOf(opId)
      if (refused !== undefined) safeCall(onProgress, { rejected: refused })
      else if (opId < this.#nextOpId) {
        safeCall(onProgress, 'relay')
        safeCall(onProgress, 'persisted')
      }
      return
    }
    if (this.#sentOps.has(opId)) safeCall(onProgress, 'relay')
    const list = this.#writeWatchers.get(opId) ?? []
    list.push(onProgress)
    this.#writeWatchers.set(opId, list)
  }

  async status(): Promise<EngineStatus> {
    return this.#status()
  }

  async subscribeStatus(onStatus: (status: EngineStatus) => void): Promise<number> {
    const id = this.#nextSubId++
    this.#statusSubs.set(id, onStatus)
    safeCall(onStatus, this.#status())
    return id
  }

  async unsubscribeStatus(id: number): Promise<void> {
    this.#statusSubs.delete(id)
  }

  subscribeTopic(topic: string, client: string, onEvent: (event: TopicEvent) => void): Promise<Result<number>> {
    return this.#guard(async () => (this.#coordinator as Coordinator).subscribeTopic(topic, client, onEvent))
  }

  async unsubscribeTopic(id: number): Promise<void> {
    this.#coordinator?.unsubscribeTopic(id)
  }

  publishTopic(topic: string, client: string, data: Value): Promise<Result<PublishReceipt>> {
    return this.#guard(() => (this.#coordinator as Coordinator).publish(topic, client, data))
  }

  acquireLock(name: string, ttl: number, wait: number, onLost: (reason: LeaseLostReason) => void): Promise<Result<LeaseInfo>> {
    return this.#guard(() => (this.#coordinator as Coordinator).acquire(name, ttl, wait, onLost))
  }

  extendLock(id: number, ttl: number): Promise<Result<LeaseInfo>> {
    return this.#guard(() => (this.#coordinator as Coordinator).extend(id, ttl))
  }

  releaseLock(id: number): Promise<Result<void>> {
    return this.#guard(() => (this.#coordinator as Coordinator).release(id))
  }

  checkLock(name: string, token: number): Promise<Result<LockStatus>> {
    return this.#guard(() => (this.#coordinator as Coordinator).check(name, token))
  }

  invoke(map: string, key: string, processor: string, args: Value): Promise<Result<Value>> {
    return this.#guard(() => (this.#coordinator as Coordinator).invoke(map, key, processor, args))
  }

  async setToken(token: string | undefined): Promise<void> {
    await this.#open()
    this.#sync?.setToken(token)
  }

  async setAuthProvider(provider: () => Promise<string | undefined>): Promise<void> {
    await this.#open()
    this.#sync?.setAuthProvider(provider)
  }

  async setOffline(offline: boolean): Promise<void> {
    await this.#open()
    // Stored before it takes effect, so a tab that reloads right after still finds it.
    await (this.#store as Store).commit({ meta: [{ key: OFFLINE_META, value: offline ? true : null }] })
    this.#sync?.setOffline(offline)
  }

  /** Resolves when every write and buffered remote change is stored. @internal */
  async flush(): Promise<void> {
    await this.#open()
    if (this.#flushTimer !== undefined) clearTimeout(this.#flushTimer)
    this.#flushTimer = undefined
    await this.#settle()
  }

  async close(): Promise<void> {
    if (this.#closed) return
    if (this.#opening !== undefined) {
      await this.#opening.catch(() => undefined)
      this.#sync?.stop()
      await this.flush()
    }
    this.#closed = true
    this.#coordinator?.close()
    if (this.#flushTimer !== undefined) clearTimeout(this.#flushTimer)
    this.#querySubs.clear()
    this.#valueSubs.clear()
    this.#statusSubs.clear()
    await this.#store?.close()
  }

  // ───────────────────────────── SyncHost ─────────────────────────────

  get hlc(): Hlc {
    return this.#hlc as Hlc
  }

  get lastSyncAt(): number | null {
    return this.#lastSyncAt
  }

  shapeReplicas(): ShapeReplica[] {
    return [...this.#shapes.values()]
  }

  pendingOps(): Outbox {
    return this.#outbox
  }

  async applyChanges(replica: ShapeReplica | undefined, changes: readonly Change[], moveOut: readonly string[]): Promise<void> {
    const maps = new Map<string, LoadedMap>()
    for (const change of changes) {
      const collection = collectionOf(change.kind, change.map)
      if (!maps.has(collection)) maps.set(collection, await this.#ensureMap(change.kind, change.map))
    }
    let maxStamp: Stamp | null = null
    for (const change of changes) {
      const loaded = maps.get(collectionOf(change.kind, change.map)) as LoadedMap
      if (replica !== undefined) this.#setMember(replica, change.key, true)
      if (this.#mergeIntoMemory(loaded, change.key, change.state)) this.#markDirty(loaded.collection, change.key)
      if (change.kind === 'lww') {
        const s = lwwMaxStamp(change.state)
        if (s !== null && (maxStamp === null || s > maxStamp)) maxStamp = s
      }
      this.#receivedRecords++
    }
    if (maxStamp !== null) {
      try {
        this.hlc.receive(maxStamp)
        this.#floor = laterStamp(this.#floor, maxStamp)
      } catch (error) {
        // A remote clock far ahead: keep the data, do not drag our clock with it.
        if (!isOutpostError(error)) throw error
      }
    }
    if (replica !== undefined && moveOut.length > 0) {
      const map = replica.shape.map
      for (const key of moveOut) {
        // A key with a write of ours still pending stays in the shape (members and tree): the
        // write may yet bring it back, and if it does not, the next reconciliation sees the key
        // and moves it out. Dropping membership but keeping the data hid it from reconciliation for good.
        if ((['lww', 'or', 'counter'] as const).some((kind) => this.#hasPending(kind, map, key))) continue
        this.#setMember(replica, key, false)
        replica.track('lww', map, key, undefined)
        if (this.#coveredElsewhere(replica, map, key)) continue
        for (const kind of ['lww', 'or', 'counter'] as const) {
          const loaded = this.#maps.get(collectionOf(kind, map))
          if (loaded !== undefined) this.#dropFromMemory(loaded, key)
        }
      }
    }
    this.#scheduleFlush()
    this.#scheduleNotify()
  }

  #coveredElsewhere(except: ShapeReplica, map: string, key: string): boolean {
    for (const shape of this.#shapes.values()) if (shape !== except && shape.shape.map === map && shape.covers(key)) return true
    return false
  }

  #hasPending(kind: CollectionKind, map: string, key: string): boolean {
    return this.#outbox.pending().some((e) => e.change.kind === kind && e.change.map === map && e.change.key === key)
  }

  /** Drops a shape's local data (past the tombstone horizon) so it re-syncs from empty. */
  async resetShape(replica: ShapeReplica): Promise<void> {
    const map = replica.shape.map
    const keys = [...replica.tree.keys()]
    for (const key of keys) {
      this.#setMember(replica, key, false)
      if (this.#coveredElsewhere(replica, map, key)) continue
      for (const kind of ['lww', 'or', 'counter'] as const) {
        const loaded = this.#maps.get(collectionOf(kind, map))
        if (loaded !== undefined && !this.#hasPending(kind, map, key)) this.#dropFromMemory(loaded, key)
      }
    }
    replica.clear()
    // Keys kept for pending writes stay in the tree: the relay will be told about them.
    for (const kind of ['lww', 'or', 'counter'] as const) {
      const loaded = this.#maps.get(collectionOf(kind, map))
      if (loaded !== undefined) for (const [key, state] of loaded.states) replica.track(kind, map, key, state)
    }
    this.#scheduleFlush()
    this.#scheduleNotify()
  }

  ownPart(change: Change): Change | undefined {
    return ownPart(change, this.#replicaId as ReplicaId)
  }

  recordsFor(replica: ShapeReplica, keys: readonly string[]): Change[] {
    const out: Change[] = []
    const map = replica.shape.map
    for (const kind of ['lww', 'or', 'counter'] as const) {
      const loaded = this.#maps.get(collectionOf(kind, map))
      if (loaded === undefined) continue
      for (const key of keys) {
        const state = loaded.states.get(key)
        if (state !== undefined) out.push({ kind, map, key, state } as Change)
      }
    }
    return out
  }

  /**
   * The relay acknowledged `ok` and refused `rejected` for good. A refused write leaves the
   * outbox, goes to the rejection log, and its registers are taken out of the local record
   * (the key becomes what the relay and this device's other pending writes say) in the same
   * transaction, so nothing only this device believes survives a crash either. Shapes that
   * cover a refused key reconcile again, which brings back what the refused write had
   * overwritten. Runs in the committer, so it never interleaves with a local commit.
   */
  acked(ok: readonly number[], rejected: readonly (readonly [number, SerializedError])[]): Promise<void> {
    return this.#job(async () => {
      const store = this.#store as Store
      const refused = rejected.flatMap(([opId, error]) => {
        const entry = this.#outbox.get(opId)
        return entry === undefined ? [] : [{ entry, error }]
      })
      const refusedIds = new Set(refused.map(({ entry }) => entry.opId))
      const puts: StoreEntry[] = []
      const deletes: { collection: string; key: string }[] = [...ok, ...refusedIds].map((opId) => ({ collection: OUTBOX_COLLECTION, key: outboxKey(opId) }))
      const touched = new Map<string, { loaded: LoadedMap; key: string }>()
      const now = this.#now()
      for (const { entry, error } of refused) {
        const { kind, map, key } = entry.change
        this.#rejections.record(entry, error, now)
        const loaded = await this.#ensureMap(kind, map)
        const current = loaded.states.get(key)
        if (current === undefined) continue
        let state = withoutWrite(kind, current, entry.change.state, this.#replicaId as ReplicaId) as AnyState
        // Writes to the key still pending (not refused) stay: a counter's own entry totals them all.
        for (const other of this.#outbox.pendingFor(kind, map, key)) {
          if (!refusedIds.has(other.opId)) state = mergeState(kind, state as never, other.change.state as never)
        }
        loaded.states.set(key, state)
        this.#keyChanged(loaded, key, state)
        touched.set(`${loaded.collection}\u0000${key}`, { loaded, key })
      }
      for (const { loaded, key } of touched.values()) {
        const state = loaded.states.get(key)
        if (state === undefined) deletes.push({ collection: loaded.collection, key })
        else puts.push({ collection: loaded.collection, key, value: state as unknown as Value })
      }
      for (const opId of ok) for (const stamp of stampsOf((this.#outbox.get(opId) as OutboxEntry | undefined)?.change ?? ({ kind: 'counter' } as Change))) this.#floor = laterStamp(this.#floor, stamp)
      const meta = [{ key: 'clockFloor', value: this.#floor }, ...(refused.length > 0 ? [{ key: REJECTED_META_KEY, value: this.#rejections.toValue() }] : [])]
      await store.commit({ puts, deletes, meta })
      for (const opId of ok) {
        this.#outbox.remove(opId)
        this.#sentOps.delete(opId)
        const watchers = this.#writeWatchers.get(opId)
        this.#writeWatchers.delete(opId)
        for (const w of watchers ?? []) safeCall(w, 'persisted')
      }
      for (const { entry, error } of refused) {
        this.#outbox.remove(entry.opId)
        this.#sentOps.delete(entry.opId)
        this.#lastError = error
        const watchers = this.#writeWatchers.get(entry.opId)
        this.#writeWatchers.delete(entry.opId)
        for (const w of watchers ?? []) safeCall(w, { rejected: error })
      }
      if (touched.size > 0) {
        this.#scheduleNotify()
        const maps = new Set([...touched.values()].map(({ loaded }) => loaded.map))
        this.#sync?.repair([...this.#shapes.values()].filter((shape) => maps.has(shape.shape.map)))
      }
      this.#scheduleStatus()
    })
  }

  sent(opIds: readonly number[]): void {
    for (const opId of opIds) {
      if (this.#sentOps.has(opId)) continue
      this.#sentOps.add(opId)
      for (const w of this.#writeWatchers.get(opId) ?? []) safeCall(w, 'relay')
    }
  }

  /**
   * The relay measured this device's clock offset (at `welcome`): pending writes stamped
   * under a different offset are re-stamped (see `restamp.ts`), in memory and in the store,
   * before the sync client reconciles or sends them; the clock rebases at once, so a write
   * made meanwhile already follows corrected time.
   */
  clockCorrected(): Promise<void> {
    const hlc = this.#hlc as Hlc
    const offset = hlc.offset
    const pending = [...this.#outbox.pending(), ...this.#pendingLocal.map((op) => ({ change: { kind: op.kind, map: op.map, key: op.key, state: op.delta } as Change, offset: op.offset }))]
    const stale = pending.some((entry) => Math.abs(offset - (entry.offset ?? 0)) > 1_000)
    const ahead = hlc.last !== null && hlc.last.localeCompare(hlc.physicalNow().toString(36).padStart(10, '0')) > 0
    if (stale || ahead) hlc.rebase(laterStamp(clockFloor(this.#floor, pending, offset), null))
    return this.#job(async () => {
      const store = this.#store as Store
      const plan = restampEntries(this.#outbox.pending(), offset, (change, mapping) => ({ ...change, state: restampState(change.kind, change.state, mapping) }) as Change)
      const puts: StoreEntry[] = plan.entries.map((entry) => ({ collection: OUTBOX_COLLECTION, key: outboxKey(entry.opId), value: entry as unknown as Value }))
      const touched: { loaded: LoadedMap; key: string; state: AnyState }[] = []
      const seen = new Set<string>()
      for (const entry of plan.entries) {
        const { kind, map, key } = entry.change
        const id = mapKey(kind, map, key)
        if (seen.has(id)) continue
        seen.add(id)
        const loaded = await this.#ensureMap(kind, map)
        const current = loaded.states.get(key)
        if (current === undefined) continue
        const state = restampState(kind, current, plan.mapping) as AnyState
        touched.push({ loaded, key, state })
        puts.push({ collection: loaded.collection, key, value: state as unknown as Value })
      }
      await store.commit({ puts, meta: [{ key: 'clockOffset', value: offset }, { key: 'hlc', value: hlc.last }] })
      for (const entry of plan.entries) this.#outbox.add(entry)
      for (const { loaded, key, state } of touched) {
        loaded.states.set(key, state)
        this.#keyChanged(loaded, key, state)
      }
      if (touched.length > 0) this.#scheduleNotify()
    })
  }

  limitsChanged(limits: WireLimits): void {
    if (this.#limits.maxFrameBytes === limits.maxFrameBytes && this.#limits.maxElements === limits.maxElements) return
    this.#limits = limits
    // Remembered for offline writes after a restart; a failure only means the defaults next time.
    void (this.#store as Store).commit({ meta: [{ key: 'wireLimits', value: { ...limits } }] }).catch(onMetaWriteError)
  }

  synced(serverTime: number): void {
    this.#lastSyncAt = serverTime
    this.#metaDirty = true
    this.#flushRequested = true
    this.#pump()
    this.#scheduleStatus()
  }

  connectionChanged(error?: SerializedError): void {
    if (error !== undefined) this.#lastError = error
    // Every state is reported, even one that lasts a microtask (e.g. auth-expired).
    const status = this.#status()
    for (const fn of this.#statusSubs.values()) safeCall(fn, status)
  }

  coordinationMessage(message: TopicMessage | LockLostMessage): void {
    this.#coordinator?.onMessage(message)
  }

  sessionChanged(up: boolean): void {
    this.#coordinator?.sessionChanged(up)
  }

  topicRefused(topic: string, error: SerializedError): boolean {
    return this.#coordinator?.topicRefused(topic, error) ?? false
  }

  /** For `NotFoundError` users: the shape replica with `id`. @internal */
  shapeById(id: string): ShapeReplica {
    const replica = this.#shapes.get(id)
    if (replica === undefined) throw new NotFoundError(`no shape subscription ${id}`)
    return replica
  }
}
