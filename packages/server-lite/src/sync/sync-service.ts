/**
 * The relay's shared sync state: maps loaded lazily from the store, durable commits
 * (concurrent batches share one LMDB transaction), live fan-out to subscriptions after
 * commit, replica → subject binding, and tombstone GC.
 */
import {
  ForbiddenError,
  decodeStamp,
  isTombstone,
  type CollectionKind,
  type CrdtState,
  type LwwRecordState,
  type Store,
  type StoreBatch,
  type StoreEntry,
  type Value,
} from '@outpost/core'
import type { Logger } from 'pino'
import type { RelayMetrics } from '../metrics'
import { Collection, kindMetaKey, storeCollection } from './collection'
import type { ShapeView, ViewEffect } from './shape-view'

/** A subscription as the fan-out sees it. */
export interface Subscriber {
  readonly sub: number
  readonly view: ShapeView
  readonly map: string
  readonly kind: () => CollectionKind
  /** Delivers changes and move-outs (chunked by the session). */
  deliver(changes: readonly { key: string; state: CrdtState }[], moveOut: readonly string[]): void
  /** The session it belongs to (compared by identity). */
  readonly owner: object
}

/** A change accepted and applied in memory, waiting for its commit before fan-out. */
export interface AppliedChange {
  readonly collection: Collection
  readonly key: string
  readonly effects: readonly ViewEffect[]
  /** True when the writer already holds exactly the merged state (nothing to echo back). */
  readonly writerUpToDate: boolean
}

const SCAN_PAGE = 5_000

/** Shared state of one relay; see the module comment. */
export class SyncService {
  readonly store: Store
  readonly #metrics: RelayMetrics
  readonly #logger: Logger
  readonly #collections = new Map<string, Collection>()
  readonly #loading = new Map<string, Promise<Collection>>()
  readonly #replicas = new Map<string, string>()
  readonly #inflight = new Set<Promise<unknown>>()
  #storeHealthy = true
  /** Batches waiting for this turn's group commit. */
  #group: { puts: Map<string, StoreEntry>; meta: Map<string, { readonly key: string; readonly value: Value | null }>; maps: Set<string>; done: Promise<void> } | undefined

  constructor(store: Store, metrics: RelayMetrics, logger: Logger) {
    this.store = store
    this.#metrics = metrics
    this.#logger = logger
  }

  /** False after a commit failed; `/readyz` reports it. */
  get storeHealthy(): boolean {
    return this.#storeHealthy
  }

  /** The map's state, already loaded. */
  loaded(map: string): Collection | undefined {
    return this.#collections.get(map)
  }

  /**
   * Forgets a map that holds nothing and has no subscribers, so requests naming endless
   * nonexistent maps cannot grow the relay's memory.
   */
  evictIfIdle(map: string): void {
    const collection = this.#collections.get(map)
    if (collection !== undefined && collection.idle) this.#collections.delete(map)
  }

  /**
   * The cached state of `collection`'s map after an `await`: the one in the cache, or
   * `collection` itself put back if it was evicted meanwhile (it was empty then, so a
   * copy loaded since cannot hold less). Call it synchronously before using a map.
   */
  current(collection: Collection): Collection {
    const cached = this.#collections.get(collection.map)
    if (cached !== undefined) return cached
    this.#collections.set(collection.map, collection)
    return collection
  }

  /** The map's state, loading it from the store on first use (one load however many callers ask). */
  collection(map: string): Promise<Collection> {
    const ready = this.#collections.get(map)
    if (ready !== undefined) return Promise.resolve(ready)
    let loading = this.#loading.get(map)
    if (loading === undefined) {
      loading = this.#load(map).finally(() => this.#loading.delete(map))
      this.#loading.set(map, loading)
    }
    return loading
  }

  async #load(map: string): Promise<Collection> {
    const kind = (await this.store.getMeta(kindMetaKey(map))) as CollectionKind | undefined
    const collection = new Collection(map, kind)
    if (kind !== undefined) {
      const name = storeCollection(map)
      let after: string | undefined
      for (;;) {
        const page = await this.store.scan(name, after === undefined ? { limit: SCAN_PAGE } : { after, limit: SCAN_PAGE })
        for (const entry of page) collection.load(entry.key, entry.value as CrdtState)
        if (page.length < SCAN_PAGE) break
        after = (page[page.length - 1] as { key: string }).key
      }
    }
    this.#collections.set(map, collection)
    return collection
  }

  /**
   * Commits `batch` durably. Batches issued in the same event-loop turn are merged into one
   * store commit (one transaction, one fsync): group commit. A later put of a key wins,
   * which is right because every put carries the key's full merged state at its time.
   * Batches with deletes (tombstone GC) commit on their own, so a delete never reorders
   * with a put.
   */
  commit(batch: StoreBatch, maps: readonly string[]): Promise<void> {
    if ((batch.deletes?.length ?? 0) > 0) return this.#commitNow(batch, maps)
    let group = this.#group
    if (group === undefined) {
      let resolve!: () => void
      let reject!: (error: unknown) => void
      const done = new Promise<void>((res, rej) => {
        resolve = res
        reject = rej
      })
      group = { puts: new Map(), meta: new Map(), maps: new Set(), done }
      const pending = group
      this.#group = group
      this.#track(done)
      setImmediate(() => {
        this.#group = undefined
        this.#commitNow({ puts: [...pending.puts.values()], meta: [...pending.meta.values()] }, [...pending.maps]).then(resolve, reject)
      })
    }
    for (const put of batch.puts ?? []) group.puts.set(`${put.collection}\u0000${put.key}`, put)
    for (const entry of batch.meta ?? []) group.meta.set(entry.key, entry)
    for (const map of maps) group.maps.add(map)
    return group.done
  }

  #commitNow(batch: StoreBatch, maps: readonly string[]): Promise<void> {
    const end = this.#metrics.commitSeconds.startTimer()
    const done = this.store.commit(batch).then(
      () => {
        end()
        // A commit that lands proves the store works again (readyz follows this flag).
        this.#storeHealthy = true
      },
      (error: unknown) => {
        end()
        this.#storeHealthy = false
        // Memory ran ahead of the store: drop those maps so the next use reloads what is durable.
        for (const map of maps) this.#collections.delete(map)
        this.#logger.error({ err: error }, 'store commit failed')
        throw error
      },
    )
    this.#track(done)
    return done
  }

  #track(done: Promise<unknown>): void {
    this.#inflight.add(done)
    const forget = (): void => {
      this.#inflight.delete(done)
    }
    done.then(forget, forget)
  }

  /**
   * Resolves once every commit issued so far has settled (failures included). A batch that
   * changed nothing (a replay) is acked after it, so its ack never overtakes the commit of
   * the write it repeats.
   */
  barrier(): Promise<void> {
    if (this.#inflight.size === 0) return Promise.resolve()
    return Promise.allSettled([...this.#inflight]).then(() => undefined)
  }

  /** Resolves when every commit issued so far has settled. */
  async settle(): Promise<void> {
    while (this.#inflight.size > 0) await Promise.allSettled([...this.#inflight])
  }

  /** Sends committed changes to every subscription they touch. */
  fanOut(applied: readonly AppliedChange[], origin: object): void {
    const out = new Map<Subscriber, { changes: { key: string; state: CrdtState }[]; moveOut: string[] }>()
    for (const change of applied) {
      for (const effect of change.effects) {
        for (const subscriber of effect.view.subscribers as Set<Subscriber>) {
          let entry = out.get(subscriber)
          if (entry === undefined) {
            entry = { changes: [], moveOut: [] }
            out.set(subscriber, entry)
          }
          const own = subscriber.owner === origin
          for (const key of effect.send) {
            if (own && key === change.key && change.writerUpToDate) continue
            const state = effect.view.memberState(key)
            if (state !== undefined) entry.changes.push({ key, state })
          }
          for (const key of effect.moveOut) if (!effect.view.tree.has(key)) entry.moveOut.push(key)
        }
      }
    }
    for (const [subscriber, { changes, moveOut }] of out) {
      if (changes.length > 0 || moveOut.length > 0) subscriber.deliver(changes, moveOut)
    }
  }

  /**
   * Binds `replicaId` to `subject` on first use (persisted); throws {@link ForbiddenError}
   * when another subject already owns it, so nobody can write as someone else's device.
   */
  async bindReplica(replicaId: string, subject: string): Promise<void> {
    let owner = this.#replicas.get(replicaId)
    if (owner === undefined) {
      owner = (await this.store.getMeta(`replica:${replicaId}`)) as string | undefined
      if (owner === undefined) {
        await this.commit({ meta: [{ key: `replica:${replicaId}`, value: subject }] }, [])
        owner = subject
      }
      this.#replicas.set(replicaId, owner)
    }
    if (owner !== subject) {
      throw new ForbiddenError(`Replica id ${replicaId.slice(0, 64)} belongs to another user; each device database must use its own replica id`, { replicaId: replicaId.slice(0, 128) })
    }
  }

  /**
   * Deletes LWW tombstones older than `horizonMs` (no alive field, tombstone stamp older
   * than the horizon) from the store and memory. Returns how many were collected.
   */
  async collectTombstones(now: number, horizonMs: number): Promise<number> {
    const cutoff = now - horizonMs
    let collected = 0
    const names = (await this.store.collections()).filter((name) => name.startsWith('m:')).map((name) => name.slice(2))
    for (const map of names) {
      const collection = await this.collection(map)
      if (collection.kind !== 'lww') continue
      const doomed: string[] = []
      for (const [key, state] of collection.entries()) {
        const lww = state as LwwRecordState
        if (isTombstone(lww) && decodeStamp(lww.deleted).wall < cutoff) doomed.push(key)
      }
      if (doomed.length === 0) continue
      await this.commit({ deletes: doomed.map((key) => ({ collection: storeCollection(map), key })) }, [map])
      // A write may have revived a key while the commit ran: only collect what is still a tombstone.
      for (const key of doomed) {
        const state = collection.get(key) as LwwRecordState | undefined
        if (state !== undefined && isTombstone(state)) {
          collection.collect(key)
          collected++
        } else if (state !== undefined) {
          await this.commit({ puts: [{ collection: storeCollection(map), key, value: state as unknown as Value }] }, [map])
        }
      }
    }
    return collected
  }
}
