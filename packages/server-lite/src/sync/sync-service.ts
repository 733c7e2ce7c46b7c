/**
 * The relay's shared sync state, a thin facade over its parts: the record write queue and
 * its transactions (`write-queue.ts`; every request of one event turn goes to the store in
 * one transaction), live fan-out and catch-up with other relays (`fan-out.ts`), the
 * background jobs (`jobs.ts`: tombstone GC, change-log retention). It owns what they share:
 * the store's health, the metadata store's group commit (locks, replica bindings), the
 * barrier over commits in flight, replica → subject binding and the store's identity.
 *
 * Nothing here holds a map's records: they live in the store. What is in memory is the
 * {@link MapCatalog} (kinds, sequence numbers, views, Merkle trees while needed).
 */
import {
  ForbiddenError,
  InternalError,
  type MapHint,
  type Store,
  type StoreBatch,
  type StoreEntry,
  type SyncRecord,
  type SyncStore,
  type Value,
  type WriteOutcome,
} from '@outpost/core'
import { randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import type { RelayMetrics } from '../metrics'
import { FanOut, type Applied } from './fan-out'
import { SCAN_PAGE, collectTombstones, trimLogs } from './jobs'
import { MapCatalog, type MapState } from './map-catalog'
import type { PipelineRequest } from './write-pipeline'
import { MAX_TRANSACTION_CHANGES, WriteQueue, type Committed } from './write-queue'

export type { Subscriber } from './fan-out'
export { SCAN_PAGE } from './jobs'
export { MAX_PIPELINED_CHANGES, MAX_TRANSACTION_CHANGES, SMALL_RATIO } from './write-queue'

/** A store that keeps both the relay's metadata (locks, bindings) and its records. */
export type RelayStore = Store & SyncStore

/** Options of {@link SyncService}. */
export interface SyncServiceOptions {
  /** Log entries kept per map (older cursors fall back to Merkle). */
  readonly changeLogEntries: number
  /** Most changes per store transaction (default {@link MAX_TRANSACTION_CHANGES}). */
  readonly maxTransactionChanges?: number
  /** Most changes in transactions in flight at once, when the store pipelines them (default {@link MAX_PIPELINED_CHANGES}). */
  readonly maxPipelinedChanges?: number
  /** Called after each commit with the new head of every map it changed (the bus's hints to other relays). */
  readonly onCommitted?: (hints: readonly MapHint[]) => void
}

/** Shared state of one relay; see the module comment. */
export class SyncService {
  readonly store: RelayStore
  readonly catalog: MapCatalog
  readonly #metrics: RelayMetrics
  readonly #logger: Logger
  readonly #options: SyncServiceOptions
  readonly #replicas = new Map<string, string>()
  readonly #inflight = new Set<Promise<unknown>>()
  #storeHealthy = true
  /** Metadata batches waiting for this turn's group commit. */
  #group: { puts: Map<string, StoreEntry>; meta: Map<string, { readonly key: string; readonly value: Value | null }>; done: Promise<void> } | undefined
  /** Record writes waiting for a transaction, and the transaction loop; see `write-queue.ts`. */
  readonly #writes: WriteQueue
  /** Settles once the last transaction that had to load a map first was handed to the store (later ones wait for it). */
  #loading: Promise<void> | undefined
  /** Delivery to subscriptions and catch-up with other relays; see `fan-out.ts`. */
  readonly #fanOut: FanOut
  #storeId: Promise<string> | undefined

  constructor(store: RelayStore, metrics: RelayMetrics, logger: Logger, options: SyncServiceOptions) {
    this.store = store
    this.catalog = new MapCatalog(store)
    this.#metrics = metrics
    this.#logger = logger
    this.#options = options
    this.#writes = new WriteQueue((requests, origins) => this.#commitWrites(requests, origins), (done) => this.#track(done), {
      maxTransactionChanges: options.maxTransactionChanges,
      pipelined: (store as RelayStore & { pipelinedWrites?: boolean }).pipelinedWrites === true,
      maxPipelinedChanges: options.maxPipelinedChanges,
    })
    this.#fanOut = new FanOut(store, this.catalog, logger)
  }

  /** False after a commit failed; `/readyz` reports it. */
  get storeHealthy(): boolean {
    return this.#storeHealthy
  }

  // ───────────────────────────── record writes ─────────────────────────────
  /**
   * Stores `requests` (built by the write pipeline) on behalf of `origin`, then fans the
   * applied changes out. Resolves with one outcome per request once its transaction is
   * durable; rejects (for all of them) when the store fails.
   *
   * Writes wait in one queue; each transaction takes the smallest waiting batches first, up
   * to {@link MAX_TRANSACTION_CHANGES} changes (a larger batch is cut across transactions),
   * and on a pipelining store (LMDB) several are in flight and share fsyncs (see
   * `write-queue.ts`). So many small writes share one fsync (group commit), and a client
   * sending huge batches never delays others by its whole backlog. A transaction does not add
   * a batch more than {@link SMALL_RATIO} times what it holds, so a one-change write commits
   * in its own transaction instead of with 63 flooder changes.
   */
  write(requests: readonly PipelineRequest[], origin: object): Promise<WriteOutcome[]> {
    return this.#writes.push(requests, origin)
  }

  /**
   * Starts the store transaction of `requests` (the write queue calls this in transaction
   * order). The maps it writes are loaded first; when one is not in memory yet, this and
   * every later transaction wait for it, so transactions reach the store in the queue's order.
   */
  #commitWrites(requests: readonly PipelineRequest[], origins: readonly object[]): Promise<Committed> {
    const names = [...new Set(requests.map((request) => request.map))]
    if (this.#loading === undefined && names.every((name) => this.catalog.peek(name) !== undefined)) {
      return this.#storeWrites(requests, origins, new Map(names.map((name) => [name, this.catalog.peek(name) as MapState])))
    }
    const before = this.#loading
    const loaded = (async () => {
      await before
      const maps = new Map<string, MapState>()
      for (const name of names) maps.set(name, await this.catalog.get(name))
      return maps
    })()
    let committed: Promise<Committed> | undefined
    const started = loaded.then((maps) => {
      committed = this.#storeWrites(requests, origins, maps)
    })
    const mark = started.then(
      () => undefined,
      () => undefined,
    )
    this.#loading = mark
    void mark.then(() => {
      if (this.#loading === mark) this.#loading = undefined
    })
    return started.then(() => committed as Promise<Committed>)
  }

  /** Hands `requests` to the store at once; resolves once durable, with the catalog update and fan-out to run in order. */
  #storeWrites(requests: readonly PipelineRequest[], origins: readonly object[], maps: ReadonlyMap<string, MapState>): Promise<Committed> {
    const end = this.#metrics.commitSeconds.startTimer()
    return this.store.applyWrites(requests).then(
      (outcomes) => {
        end()
        this.#storeHealthy = true
        return { outcomes, publish: () => this.#publish(requests, origins, maps, outcomes) }
      },
      (error: unknown) => {
        end()
        this.#storeHealthy = false
        this.#logger.error({ err: error }, 'store commit failed')
        throw error
      },
    )
  }

  /** A durable transaction's changes: into the catalog (heads, trees), out to subscribers and other relays. */
  #publish(requests: readonly PipelineRequest[], origins: readonly object[], maps: ReadonlyMap<string, MapState>, outcomes: readonly WriteOutcome[]): void {
    const applied: Applied[] = []
    outcomes.forEach((outcome, i) => {
      const request = requests[i] as PipelineRequest
      if (outcome.status === 'unchanged') {
        // The writer holds a state the store does not (its write lost): echo the stored record to it.
        const current = outcome.current
        if (current !== undefined && !request.writerUpToDate(current.state)) {
          const map = maps.get(request.map) as MapState
          applied.push({ map, kind: request.kind, key: request.key, previous: current.state, state: current.state, seq: current.seq, origin: origins[i] as object, writerUpToDate: false, unchanged: true })
        }
        return
      }
      if (outcome.status !== 'applied') return
      const map = maps.get(request.map) as MapState
      map.applied(request.kind, request.key, outcome.previous?.state, outcome.state, outcome.seq)
      applied.push({ map, kind: request.kind, key: request.key, previous: outcome.previous?.state, state: outcome.state, seq: outcome.seq, origin: origins[i] as object, writerUpToDate: request.writerUpToDate(outcome.state) })
    })
    if (applied.length > 0) {
      this.#fanOut.enqueue(applied)
      if (this.#options.onCommitted !== undefined && applied.some((change) => change.unchanged !== true)) {
        const heads = new Map<string, number>()
        for (const change of applied) if (change.unchanged !== true) heads.set(change.map.map, Math.max(heads.get(change.map.map) ?? 0, change.seq))
        this.#options.onCommitted([...heads].map(([map, seq]) => ({ map, seq })))
      }
    }
  }

  /** Other relays committed `hints`: catch up each map this relay holds and has not reached yet. */
  hinted(hints: readonly MapHint[]): void {
    this.#fanOut.hinted(hints)
  }

  /**
   * Fans out what other relays sharing the store committed to `map` since this relay's
   * `head` for it (their changes reach the store's log, not this process): read the log in
   * sequence order, skip this relay's own changes, and deliver each key's current record.
   * Called on a bus hint, on a bus reconnect and by the poll; idempotent and serialized per map.
   */
  catchUp(map: string): Promise<void> {
    return this.#fanOut.catchUp(map)
  }

  /**
   * Checks every watched map against the store's head and catches up those behind: the
   * safety net under the bus's hints (a hint lost while the bus was down costs at most one
   * poll interval). Returns how many maps were behind.
   */
  poll(): Promise<number> {
    return this.#fanOut.poll()
  }

  /** Resolves once every fan-out queued so far has been delivered (tests, drain). */
  delivered(): Promise<void> {
    return this.#fanOut.delivered()
  }

  // ───────────────────────────── metadata commits ─────────────────────────────

  /**
   * Commits a metadata batch (locks, replica bindings) durably. Batches issued in the same
   * event turn share one store commit (group commit); a later put of a key wins.
   */
  commit(batch: StoreBatch): Promise<void> {
    if ((batch.deletes?.length ?? 0) > 0) return this.#commitMeta(batch)
    let group = this.#group
    if (group === undefined) {
      const pending: { puts: Map<string, StoreEntry>; meta: Map<string, { readonly key: string; readonly value: Value | null }>; done: Promise<void> } = { puts: new Map(), meta: new Map(), done: Promise.resolve() }
      pending.done = new Promise<void>((resolve, reject) => {
        setImmediate(() => {
          this.#group = undefined
          this.#commitMeta({ puts: [...pending.puts.values()], meta: [...pending.meta.values()] }).then(resolve, reject)
        })
      })
      this.#group = pending
      this.#track(pending.done)
      group = pending
    }
    for (const put of batch.puts ?? []) group.puts.set(`${put.collection}\u0000${put.key}`, put)
    for (const entry of batch.meta ?? []) group.meta.set(entry.key, entry)
    return group.done
  }

  #commitMeta(batch: StoreBatch): Promise<void> {
    const end = this.#metrics.commitSeconds.startTimer()
    const done = this.store.commit(batch).then(
      () => {
        end()
        this.#storeHealthy = true
      },
      (error: unknown) => {
        end()
        this.#storeHealthy = false
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

  /** Resolves once every commit issued so far has settled (failures included). */
  barrier(): Promise<void> {
    if (this.#inflight.size === 0) return Promise.resolve()
    return Promise.allSettled([...this.#inflight]).then(() => undefined)
  }

  /** Resolves when every commit issued so far (queued writes included) has settled, and its fan-out was delivered. */
  async settle(): Promise<void> {
    while (this.#inflight.size > 0 || this.#writes.busy) {
      if (this.#inflight.size > 0) await Promise.allSettled([...this.#inflight])
      else await new Promise((resolve) => setImmediate(resolve))
    }
    await this.#fanOut.delivered()
  }

  // ───────────────────────────── replicas, jobs ─────────────────────────────

  /**
   * Binds `replicaId` to `subject` on first use (persisted); throws {@link ForbiddenError}
   * when another subject already owns it, so nobody can write as someone else's device.
   */
  async bindReplica(replicaId: string, subject: string): Promise<void> {
    let owner = this.#replicas.get(replicaId)
    if (owner === undefined) {
      owner = (await this.store.getMeta(`replica:${replicaId}`)) as string | undefined
      if (owner === undefined) {
        await this.commit({ meta: [{ key: `replica:${replicaId}`, value: subject }] })
        owner = subject
      }
      // Bounded: a flood of replica ids costs store reads, not memory.
      if (this.#replicas.size >= 100_000) this.#replicas.clear()
      this.#replicas.set(replicaId, owner)
    }
    if (owner !== subject) {
      throw new ForbiddenError(`Replica id ${replicaId.slice(0, 64)} belongs to another user; each device database must use its own replica id`, { replicaId: replicaId.slice(0, 128) })
    }
  }

  /**
   * Deletes LWW tombstones older than `horizonMs` (no alive field, tombstone stamp older
   * than the horizon), scanning each map in pages. Returns how many were collected.
   */
  collectTombstones(now: number, horizonMs: number): Promise<number> {
    return collectTombstones(this.store, this.catalog, now, horizonMs)
  }

  /** Keeps at most `changeLogEntries` log entries per map; returns how many were dropped. */
  trimLogs(): Promise<number> {
    return trimLogs(this.store, this.catalog, this.#options.changeLogEntries)
  }

  /**
   * The store's random identity (created on first use, kept in its metadata): part of every
   * cursor, so a cursor from another store, or from this one before it was wiped, is refused.
   */
  storeId(): Promise<string> {
    this.#storeId ??= (async () => {
      const stored = await this.store.getMeta('storeId')
      if (typeof stored === 'string') return stored
      const id = randomBytes(12).toString('hex')
      // Relays sharing a store must agree on one id: a store that can set it only when absent does so.
      const shared = this.store as RelayStore & { initMeta?: (key: string, value: Value) => Promise<Value> }
      if (shared.initMeta !== undefined) return String(await shared.initMeta('storeId', id))
      await this.commit({ meta: [{ key: 'storeId', value: id }] })
      return id
    })()
    return this.#storeId
  }

  /** Visits every record of `map` once (a paged scan), for building views. */
  scanAll(map: string): (visit: (record: SyncRecord) => void) => Promise<void> {
    return async (visit) => {
      let after: string | undefined
      for (;;) {
        const page = await this.store.scanRecords(map, after === undefined ? { limit: SCAN_PAGE } : { after, limit: SCAN_PAGE })
        for (const record of page) visit(record)
        if (page.length < SCAN_PAGE) return
        after = (page[page.length - 1] as SyncRecord).key
      }
    }
  }
}

/** A store without record data cannot back a relay: say what is missing. */
export function assertRelayStore(store: Store): RelayStore {
  const sync = store as Partial<SyncStore>
  if (typeof sync.applyWrites !== 'function' || typeof sync.scanRecords !== 'function') {
    throw new InternalError(`The store "${store.name}" keeps no record data (it does not implement SyncStore); use LmdbStore, MemoryStore or a Postgres store`)
  }
  return store as RelayStore
}
