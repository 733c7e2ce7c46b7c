/**
 * The engine that owns the data: storage (IndexedDB pages, or memory), the outbox, the
 * in-memory maps live queries run on, shape replicas, and the sync client. It implements
 * {@link EngineApi}; `expose.ts` puts it behind comlink. This file is the facade: it
 * opens storage on the first call, checks each call's arguments with the method's row of
 * `ENGINE_METHODS` (`engine-methods.ts`), and hands the call to a part.
 *
 *   start-up.ts       opens storage, restores what the last run left
 *   parts.ts          builds and wires the parts below once storage is open, starts syncing
 *   map-cache.ts      each map's records in memory, loaded on first use
 *   committer.ts      the store's one writer: local writes, jobs, batched remote flushes
 *   record-ops.ts     the record writes and reads: each write's delta, queued to the committer
 *   call-ledger.ts    recent write call ids, so a retried call never writes twice
 *   live-queries.ts   live queries and values, called back once per microtask
 *   shape-set.ts      the shapes replicated from the relay, persisted
 *   sync-host.ts      the engine as the sync client sees it: merges, acks, re-stamping
 *   write-progress.ts watchers of writes on their way to the relay
 *   status-board.ts   status subscribers
 *   inspector.ts      read-only snapshots for developer tools (connection-history.ts: recent transitions)
 *   inspector-feed.ts pushes those snapshots to inspector subscribers, throttled
 *   ../search/        full-text indexes and live searches (persisted per map)
 *
 * ## Write path
 * A local write is applied to memory (live queries in every tab update), then queued to
 * the committer, which commits record page + outbox entry + clock in ONE store
 * transaction, resolves the caller, and hands the op to the sync client. Remote changes
 * merge into memory at once and are flushed to the store in large batches.
 *
 * ## Memory
 * A map is loaded into memory on first use (one bulk read of its pages). Each write costs
 * O(log n) per live query (core's incremental `QueryView`) plus O(Merkle depth) per shape:
 * no whole-map snapshot per write or per notification.
 */
import {
  relayUrlList,
  COUNTERS_MAP,
  StoreError,
  serializeError,
  type CollectionKind,
  type RecordValue,
  type ReplicaId,
  type Store,
  type Value,
} from '@outpost/core'
import type { EngineApi, EngineStatus, LeaseInfo, LockStatus, PublishReceipt, Result, WriteConcern, WriteReceipt, WriteRejection } from '../engine-api'
import { ENGINE_METHODS, parseArgs, type EngineMethodName } from '../engine-methods'
import { Outbox } from '../outbox'
import { RejectionLog } from '../rejections'
import type { ShapeReplica } from '../sync/shape-replica'
import type { SyncStats } from '../sync/sync-client'
import { CallLedger } from './call-ledger'
import { LiveQueries } from './live-queries'
import type { CreateEngineOptions, Engine } from './options'
import { ConnectionHistory } from './connection-history'
import { EngineInspector } from './inspector'
import { InspectorFeed } from './inspector-feed'
import type { InspectorSnapshot } from '../inspector-api'
import { buildParts, startParts, type EngineShared, type Parts } from './parts'
import { OFFLINE_META, initialState, openStore, restore } from './start-up'
import { StatusBoard, readStatus } from './status-board'
import * as ops from './record-ops'
import type { Args } from './record-ops'
import type { SearchStats } from '../search/live-searches'

export { REMOTE_FLUSH_RECORDS, REMOTE_FLUSH_DELAY_MS, REMOTE_FLUSH_MAX_WAIT_MS } from './committer'
export type { CreateEngineOptions, Engine } from './options'

const ok = <T>(value: T): Result<T> => ({ ok: true, value })
const fail = (error: unknown): Result<never> => ({ ok: false, error: serializeError(error) })

/** Creates an engine; storage opens on the first call (or `ready()`). */
export function createEngine(options: CreateEngineOptions): Engine {
  // A bad relay URL list fails here (ConfigError), not later as a connection loop.
  relayUrlList(options.url)
  return new EngineImpl(options)
}

class EngineImpl implements Engine {
  readonly #options: CreateEngineOptions
  readonly #now: () => number
  readonly #state = initialState()
  readonly #outbox = new Outbox()
  readonly #rejections = new RejectionLog()
  readonly #calls = new CallLedger()
  #nextSubId = 1
  readonly #live: LiveQueries
  readonly #status: StatusBoard
  readonly #history = new ConnectionHistory()
  readonly #inspector: EngineInspector
  readonly #inspectorFeed: InspectorFeed
  #store: Store | undefined
  #parts: Parts | undefined
  #opening: Promise<void> | undefined
  #closed = false

  constructor(options: CreateEngineOptions) {
    this.#options = options
    this.#now = options.now ?? Date.now
    this.#live = new LiveQueries(
      (kind, map, key) => this.#parts?.maps.get(kind, map)?.states.get(key),
      () => this.#nextSubId++,
    )
    this.#status = new StatusBoard(() => this.#readStatus())
    this.#inspector = new EngineInspector({
      database: options.name,
      relayed: options.url !== undefined,
      now: this.#now,
      outbox: this.#outbox,
      rejections: this.#rejections,
      history: this.#history,
      status: () => this.#readStatus(),
      parts: () => (this.#parts === undefined ? undefined : { ...this.#parts, store: this.#store as Store }),
    })
    this.#inspectorFeed = new InspectorFeed(this.#inspector, this.#now, this.#status, () => this.#nextSubId++)
  }

  get replicaId(): ReplicaId | undefined {
    return this.#parts?.replicaId
  }

  get store(): Store | undefined {
    return this.#store
  }

  get receivedRecords(): number {
    return this.#parts?.host.receivedRecords ?? 0
  }

  get searchStats(): SearchStats {
    return { ...(this.#parts?.search.stats ?? { indexed: 0, removed: 0, restored: 0, rebuilt: 0, saved: 0 }) }
  }

  get syncStats(): SyncStats {
    return this.#parts?.sync.stats ?? { framesSent: 0, opsChangesSent: 0, framesReceived: 0, bytesReceived: 0, resumes: { cursor: 0, slice: 0, merkle: 0, current: 0 }, antiEntropy: { gaps: 0, checks: 0, checksDiffered: 0 } }
  }

  // ───────────────────────────── start-up (parts.ts wires the parts) ─────────────────────────────

  #open(): Promise<void> {
    this.#opening ??= this.#doOpen()
    return this.#opening
  }

  /** The parts; only after `await this.#open()`. */
  get #p(): Parts {
    return this.#parts as Parts
  }

  async #doOpen(): Promise<void> {
    const store = await openStore(this.#options, this.#state)
    this.#store = store
    const restored = await restore(store, this.#now, { state: this.#state, outbox: this.#outbox, rejections: this.#rejections, calls: this.#calls })
    this.#parts = await buildParts(store, restored, this.#shared())
    await startParts(this.#parts, restored, this.#options)
  }

  /** What the parts use of the engine's own pieces. */
  #shared(): EngineShared {
    return {
      options: this.#options,
      now: this.#now,
      state: this.#state,
      outbox: this.#outbox,
      rejections: this.#rejections,
      calls: this.#calls,
      live: this.#live,
      status: this.#status,
      history: this.#history,
      inspectorFeed: this.#inspectorFeed,
      nextId: () => this.#nextSubId++,
    }
  }

  #readStatus(): EngineStatus {
    return readStatus(this.#options.mode, this.#parts?.sync, this.#outbox, this.#state, this.#rejections, this.#now())
  }

  // ───────────────────────────── EngineApi ─────────────────────────────

  /**
   * Runs a fallible method: refuses on a closed engine, opens storage on the first call,
   * checks the arguments with the method's row of {@link ENGINE_METHODS} (the one check at
   * the boundary), and answers a `Result` whose error keeps its class and code.
   */
  async #guard<K extends EngineMethodName, T>(method: K, args: Args<K>, fn: (parts: Parts, args: Args<K>) => Promise<T>): Promise<Result<T>> {
    try {
      if (this.#closed) throw new StoreError('the engine is closed')
      await this.#open()
      return ok(await fn(this.#p, parseArgs(method, args)))
    } catch (error) {
      return fail(error)
    }
  }

  ready(): Promise<Result<EngineStatus>> {
    return this.#guard('ready', [], async () => this.#readStatus())
  }

  set(...args: Args<'set'>): Promise<Result<WriteReceipt>> {
    return this.#guard('set', args, ops.set)
  }

  update(...args: Args<'update'>): Promise<Result<WriteReceipt>> {
    return this.#guard('update', args, ops.update)
  }

  delete(...args: Args<'delete'>): Promise<Result<WriteReceipt>> {
    return this.#guard('delete', args, ops.remove)
  }

  get(...args: Args<'get'>): Promise<Result<RecordValue | undefined>> {
    return this.#guard('get', args, ops.get)
  }

  orAdd(...args: Args<'orAdd'>): Promise<Result<WriteReceipt>> {
    return this.#guard('orAdd', args, ops.orAdd)
  }

  orRemove(...args: Args<'orRemove'>): Promise<Result<WriteReceipt>> {
    return this.#guard('orRemove', args, ops.orRemove)
  }

  counterAdd(...args: Args<'counterAdd'>): Promise<Result<WriteReceipt>> {
    return this.#guard('counterAdd', args, ops.counterAdd)
  }

  subscribeQuery(...args: Args<'subscribeQuery'>): Promise<Result<number>> {
    return this.#guard('subscribeQuery', args, ({ maps }, [spec, onRows]) => this.#live.subscribeQuery(maps, spec, onRows))
  }

  async unsubscribeQuery(id: number): Promise<void> {
    // Query and value subscriptions share one id space; either kind ends here.
    this.#live.unsubscribe(id)
  }

  subscribeRecord(...args: Args<'subscribeRecord'>): Promise<Result<number>> {
    return this.#guard('subscribeRecord', args, (parts, [map, key, onValue]) => this.#subscribeValue(parts, 'lww', map, key, onValue as (value: never) => void))
  }

  subscribeValue(...args: Args<'subscribeValue'>): Promise<Result<number>> {
    return this.#guard('subscribeValue', args, (parts, [kind, map, key, onValue]) => this.#subscribeValue(parts, kind, map, key, onValue as (value: never) => void))
  }

  async #subscribeValue({ maps, shapes }: Parts, kind: CollectionKind, mapOrCounter: string, orKey: string, onValue: (value: never) => void): Promise<number> {
    // Every counter is a key of the one counters collection (see COUNTERS_MAP).
    const [map, key] = kind === 'counter' ? [COUNTERS_MAP, mapOrCounter] : [mapOrCounter, orKey]
    const loaded = await maps.ensure(kind, map)
    if (kind === 'counter') await shapes.replicateCounters()
    return this.#live.subscribeValue(loaded, key, onValue)
  }

  subscribeSearch(...args: Args<'subscribeSearch'>): Promise<Result<number>> {
    return this.#guard('subscribeSearch', args, async ({ maps, search }, [spec, onHits]) => search.subscribe(await maps.ensure('lww', spec.map), spec, onHits))
  }

  async unsubscribeSearch(id: number): Promise<void> {
    this.#parts?.search.unsubscribe(id)
  }

  subscribeShape(...args: Args<'subscribeShape'>): Promise<Result<string>> {
    return this.#guard('subscribeShape', args, async ({ shapes }, [shape]) => {
      const replica = await shapes.subscribe(shape)
      return replica.id
    })
  }

  async unsubscribeShape(id: string): Promise<void> {
    await this.#parts?.shapes.unsubscribe(id)
  }

  async watchWrite(opId: number, onProgress: (event: WriteConcern | WriteRejection) => void): Promise<void> {
    await this.#open()
    const { progress } = this.#p
    progress.watch(opId, onProgress)
  }

  async status(): Promise<EngineStatus> {
    return this.#readStatus()
  }

  async subscribeStatus(onStatus: (status: EngineStatus) => void): Promise<number> {
    const id = this.#nextSubId++
    this.#status.subscribe(id, onStatus)
    return id
  }

  async unsubscribeStatus(id: number): Promise<void> {
    this.#status.unsubscribe(id)
  }

  subscribeTopic(...args: Args<'subscribeTopic'>): Promise<Result<number>> {
    return this.#guard('subscribeTopic', args, async ({ coordinator }, [topic, client, onEvent]) => coordinator.subscribeTopic(topic, client, onEvent))
  }

  async unsubscribeTopic(id: number): Promise<void> {
    this.#parts?.coordinator.unsubscribeTopic(id)
  }

  publishTopic(...args: Args<'publishTopic'>): Promise<Result<PublishReceipt>> {
    return this.#guard('publishTopic', args, ({ coordinator }, [topic, client, data]) => coordinator.publish(topic, client, data))
  }

  acquireLock(...args: Args<'acquireLock'>): Promise<Result<LeaseInfo>> {
    return this.#guard('acquireLock', args, ({ coordinator }, [name, ttl, wait, onLost]) => coordinator.acquire(name, ttl, wait, onLost))
  }

  extendLock(...args: Args<'extendLock'>): Promise<Result<LeaseInfo>> {
    return this.#guard('extendLock', args, ({ coordinator }, [id, ttl]) => coordinator.extend(id, ttl))
  }

  releaseLock(...args: Args<'releaseLock'>): Promise<Result<void>> {
    return this.#guard('releaseLock', args, ({ coordinator }, [id]) => coordinator.release(id))
  }

  checkLock(...args: Args<'checkLock'>): Promise<Result<LockStatus>> {
    return this.#guard('checkLock', args, ({ coordinator }, [name, token]) => coordinator.check(name, token))
  }

  invoke(...args: Args<'invoke'>): Promise<Result<Value>> {
    return this.#guard('invoke', args, ({ coordinator }, [map, key, processor, data]) => coordinator.invoke(map, key, processor, data))
  }

  async setToken(token: string | undefined): Promise<void> {
    await this.#open()
    const { sync } = this.#p
    sync.setToken(token)
  }

  async setAuthProvider(provider: () => Promise<string | undefined>): Promise<void> {
    await this.#open()
    const { sync } = this.#p
    sync.setAuthProvider(provider)
  }

  async setOffline(offline: boolean): Promise<void> {
    await this.#open()
    const { sync } = this.#p
    // Stored before it takes effect, so a tab that reloads right after still finds it.
    await (this.#store as Store).commit({ meta: [{ key: OFFLINE_META, value: offline ? true : null }] })
    sync.setOffline(offline)
  }

  shapeReplicas(): readonly ShapeReplica[] {
    return this.#parts?.shapes.all() ?? []
  }

  // ── Inspector: reads only (never opens storage, loads a map, writes or sends).

  async inspect(): Promise<Result<InspectorSnapshot>> {
    try {
      await this.#opening?.catch(() => undefined)
      return ok(await this.#inspector.snapshot())
    } catch (error) {
      return fail(error)
    }
  }

  async subscribeInspector(onSnapshot: (snapshot: InspectorSnapshot) => void): Promise<number> {
    return this.#inspectorFeed.subscribe(onSnapshot)
  }

  async unsubscribeInspector(id: number): Promise<void> {
    this.#inspectorFeed.unsubscribe(id)
  }

  /** Resolves when every write and buffered remote change is stored. @internal */
  async flush(): Promise<void> {
    await this.#open()
    const { committer, search } = this.#p
    await committer.flush()
    await search.flush()
  }

  async close(): Promise<void> {
    if (this.#closed) return
    if (this.#opening !== undefined) {
      await this.#opening.catch(() => undefined)
      this.#parts?.sync.stop()
      await this.#parts?.committer.flush()
      // A snapshot that cannot be saved now is rebuilt (or caught up) on the next start.
      await this.#parts?.search.close().catch((error: unknown) => {
        this.#state.lastError = serializeError(error)
      })
    }
    this.#closed = true
    this.#parts?.coordinator.close()
    this.#parts?.committer.close()
    this.#live.clear()
    this.#inspectorFeed.clear()
    this.#status.clear()
    await this.#store?.close()
  }
}
