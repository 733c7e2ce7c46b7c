/**
 * The relay's shared sync state: writes to the store (grouped: every request of one event
 * turn goes to the store in one transaction), live fan-out to subscriptions after commit,
 * the metadata store's group commit (locks, replica bindings), replica → subject binding,
 * and the background jobs (tombstone GC, change-log retention).
 *
 * Nothing here holds a map's records: they live in the store. What is in memory is the
 * {@link MapCatalog} (kinds, sequence numbers, views, Merkle trees while needed).
 */
import {
  ForbiddenError,
  InternalError,
  decodeStamp,
  isTombstone,
  type CollectionKind,
  type CrdtState,
  type LwwRecordState,
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
import { MapCatalog, type MapState } from './map-catalog'
import type { ShapeView } from './shape-view'
import type { PipelineRequest } from './write-pipeline'

/** A store that keeps both the relay's metadata (locks, bindings) and its records. */
export type RelayStore = Store & SyncStore

/** A subscription as the fan-out sees it. */
export interface Subscriber {
  readonly sub: number
  readonly view: ShapeView
  readonly map: string
  /** Delivers records (already projected) and move-outs; `seq` is the newest map sequence number they cover. */
  deliver(changes: readonly { key: string; state: CrdtState }[], moveOut: readonly string[], seq: number): void
  /** The session it belongs to (compared by identity). */
  readonly owner: object
}

/** One committed change, as fan-out and the catalog see it. */
interface Applied {
  readonly map: MapState
  readonly kind: CollectionKind
  readonly key: string
  readonly previous: CrdtState | undefined
  readonly state: CrdtState
  readonly seq: number
  readonly origin: object
  readonly writerUpToDate: boolean
  /** For a change caught up from the log (previous unknown): what the log kept of the record before it. */
  readonly before?: Value
  /** The write taught the store nothing (a newer one had won): only its writer is told the stored record. */
  readonly unchanged?: true
}

/** Fan-out origin of changes other relays made: no local session wrote them. */
const REMOTE_ORIGIN = Object.freeze({})

/** One caller's batch waiting for a transaction. */
interface WriteJob {
  readonly requests: readonly PipelineRequest[]
  readonly origin: object
  resolve(outcomes: WriteOutcome[]): void
  reject(error: unknown): void
  /** Requests handed to a transaction so far (a large batch is cut across transactions). */
  done: number
  /** Outcomes so far, by request index. */
  readonly outcomes: WriteOutcome[]
}

/**
 * Most changes one store transaction takes by default (`limits.maxTransactionChanges`; a
 * larger batch is cut across transactions). Small on purpose: every change's `decide` runs synchronously inside the transaction, so
 * this bounds how long a commit holds the event loop and how long a small write waits for
 * the transaction ahead of it (the fair scheduler's pieces are as large; see fair-scheduler.ts).
 */
export const MAX_TRANSACTION_CHANGES = 64

/** A transaction holding n changes takes no batch of more than SMALL_RATIO × n (see {@link SyncService.write}). */
export const SMALL_RATIO = 8

/** Records scanned per store page (slices, view builds, GC). */
export const SCAN_PAGE = 2_000

/** Options of {@link SyncService}. */
export interface SyncServiceOptions {
  /** Log entries kept per map (older cursors fall back to Merkle). */
  readonly changeLogEntries: number
  /** Most changes per store transaction (default {@link MAX_TRANSACTION_CHANGES}). */
  readonly maxTransactionChanges?: number
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
  /** Record writes waiting for a transaction (see {@link write}), and whether one is running. */
  #queue: WriteJob[] = []
  #committing = false
  #storeId: Promise<string> | undefined
  /** Catch-up runs per map, one at a time. */
  readonly #catchingUp = new Map<string, Promise<void>>()
  /** Fan-out runs in commit order, one commit at a time (a window may need to read records). */
  #fanOut: Promise<void> = Promise.resolve()

  constructor(store: RelayStore, metrics: RelayMetrics, logger: Logger, options: SyncServiceOptions) {
    this.store = store
    this.catalog = new MapCatalog(store)
    this.#metrics = metrics
    this.#logger = logger
    this.#options = options
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
   * Writes wait in one queue; one transaction at a time takes the smallest waiting batches
   * first, up to {@link MAX_TRANSACTION_CHANGES} changes (a larger batch is cut across
   * transactions). So many small writes share one fsync (group commit), and a client sending
   * huge batches delays others by at most one transaction, never by its whole backlog. A
   * transaction does not add a batch more than {@link SMALL_RATIO} times what it holds, so a
   * one-change write commits on its own instead of with 63 flooder changes.
   */
  write(requests: readonly PipelineRequest[], origin: object): Promise<WriteOutcome[]> {
    if (requests.length === 0) return Promise.resolve([])
    return new Promise<WriteOutcome[]>((resolve, reject) => {
      this.#queue.push({ requests, origin, resolve, reject, done: 0, outcomes: [] })
      this.#kick()
    })
  }

  #kick(): void {
    if (this.#committing || this.#queue.length === 0) return
    this.#committing = true
    // Within one event turn, batches that arrive together join the same transaction.
    setImmediate(() => {
      const parts = this.#take()
      const done = this.#commitParts(parts)
      this.#track(done)
      void done.finally(() => {
        this.#committing = false
        this.#kick()
      })
    })
  }

  /**
   * The next transaction: waiting batches smallest first, up to {@link MAX_TRANSACTION_CHANGES}
   * changes; a batch larger than what is left is cut, its rest waits for the next
   * transaction (each change's outcome is its own, so a batch need not commit as one).
   */
  #take(): { job: WriteJob; from: number; to: number }[] {
    const order = [...this.#queue].sort((a, b) => a.requests.length - a.done - (b.requests.length - b.done))
    const parts: { job: WriteJob; from: number; to: number }[] = []
    const most = this.#options.maxTransactionChanges ?? MAX_TRANSACTION_CHANGES
    let room = most
    for (const job of order) {
      const left = job.requests.length - job.done
      // Small writes do not wait for the commit of a batch many times their size: it gets the next transaction.
      if (room <= 0 || (parts.length > 0 && left > SMALL_RATIO * (most - room))) break
      const take = Math.min(room, left)
      parts.push({ job, from: job.done, to: job.done + take })
      job.done += take
      room -= take
    }
    this.#queue = this.#queue.filter((job) => job.done < job.requests.length)
    return parts
  }

  async #commitParts(parts: readonly { job: WriteJob; from: number; to: number }[]): Promise<void> {
    const requests = parts.flatMap(({ job, from, to }) => job.requests.slice(from, to))
    const origins = parts.flatMap(({ job, from, to }) => job.requests.slice(from, to).map(() => job.origin))
    let outcomes: WriteOutcome[]
    try {
      outcomes = await this.#applyAll(requests, origins)
    } catch (error) {
      for (const { job } of parts) {
        // The rest of a cut batch must not run after part of it failed.
        this.#queue = this.#queue.filter((waiting) => waiting !== job)
        job.reject(error)
      }
      return
    }
    let at = 0
    for (const { job, from, to } of parts) {
      for (let i = from; i < to; i++) job.outcomes[i] = outcomes[at++] as WriteOutcome
      // Parts of a batch commit in order, one transaction after another: its last part completes it.
      if (to === job.requests.length) job.resolve(job.outcomes)
    }
  }

  async #applyAll(requests: readonly PipelineRequest[], origins: readonly object[]): Promise<WriteOutcome[]> {
    const maps = new Map<string, MapState>()
    for (const request of requests) if (!maps.has(request.map)) maps.set(request.map, await this.catalog.get(request.map))
    const end = this.#metrics.commitSeconds.startTimer()
    let outcomes: WriteOutcome[]
    try {
      outcomes = await this.store.applyWrites(requests)
      end()
      this.#storeHealthy = true
    } catch (error) {
      end()
      this.#storeHealthy = false
      this.#logger.error({ err: error }, 'store commit failed')
      throw error
    }
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
      this.#enqueueFanOut(applied)
      if (this.#options.onCommitted !== undefined && applied.some((change) => change.unchanged !== true)) {
        const heads = new Map<string, number>()
        for (const change of applied) if (change.unchanged !== true) heads.set(change.map.map, Math.max(heads.get(change.map.map) ?? 0, change.seq))
        this.#options.onCommitted([...heads].map(([map, seq]) => ({ map, seq })))
      }
    }
    return outcomes
  }

  /** Other relays committed `hints`: catch up each map this relay holds and has not reached yet. */
  hinted(hints: readonly MapHint[]): void {
    for (const hint of hints) {
      const state = this.catalog.peek(hint.map)
      if (state !== undefined && hint.seq > state.head) void this.catchUp(hint.map)
    }
  }

  // ───────────────────────────── fan-out ─────────────────────────────

  #enqueueFanOut(applied: readonly Applied[]): void {
    this.#fanOut = this.#fanOut.then(() => this.#deliver(applied)).catch((error: unknown) => this.#logger.error({ err: error }, 'fan-out failed'))
  }

  /** Sends committed changes to every subscription they touch, in commit order. */
  async #deliver(applied: readonly Applied[]): Promise<void> {
    const out = new Map<Subscriber, { changes: { key: string; state: CrdtState }[]; moveOut: string[]; seq: number }>()
    for (const change of applied) {
      for (const view of change.map.views.values()) {
        if (view.subscribers.size === 0) continue
        const effect =
          change.unchanged === true
            ? { send: [], moveOut: [] }
            : change.previous === undefined && change.origin === REMOTE_ORIGIN
              ? view.updateUnknown(change.key, change.state, change.before)
              : view.update(change.key, change.previous, change.state)
        if (!change.writerUpToDate && !effect.send.includes(change.key) && !effect.moveOut.includes(change.key)) {
          // The view saw no change of membership, but the writer's own copy differs from the
          // stored record (its write lost, or merged into something else): its subscriptions
          // get the record when it is a member and a move-out when it is not.
          for (const subscriber of view.subscribers as Set<Subscriber>) {
            if (subscriber.owner !== change.origin) continue
            let entry = out.get(subscriber)
            if (entry === undefined) {
              entry = { changes: [], moveOut: [], seq: 0 }
              out.set(subscriber, entry)
            }
            if (view.isMember(change.key, change.state)) entry.changes.push({ key: change.key, state: view.project(change.state) })
            else if (!view.plain) entry.moveOut.push(change.key)
          }
        }
        if (effect.send.length === 0 && effect.moveOut.length === 0) continue
        // A window may pull in another record: read it (the changed one is at hand).
        const others = effect.send.filter((k) => k !== change.key)
        const read = others.length === 0 ? [] : await this.store.getRecords(change.map.map, others)
        const states = new Map<string, CrdtState>(others.map((k, i) => [k, read[i]?.state] as const).filter((e): e is [string, CrdtState] => e[1] !== undefined))
        states.set(change.key, change.state)
        for (const [key, state] of states) view.track(key, state)
        for (const subscriber of view.subscribers as Set<Subscriber>) {
          let entry = out.get(subscriber)
          if (entry === undefined) {
            entry = { changes: [], moveOut: [], seq: 0 }
            out.set(subscriber, entry)
          }
          entry.seq = Math.max(entry.seq, change.seq)
          const own = subscriber.owner === change.origin
          for (const key of effect.send) {
            if (own && key === change.key && change.writerUpToDate) continue
            const state = states.get(key)
            if (state !== undefined) entry.changes.push({ key, state: view.project(state) })
          }
          entry.moveOut.push(...effect.moveOut)
        }
      }
    }
    for (const [subscriber, { changes, moveOut, seq }] of out) subscriber.deliver(changes, moveOut, seq)
  }

  /**
   * Fans out what other relays sharing the store committed to `map` since this relay's
   * `head` for it (their changes reach the store's log, not this process): read the log in
   * sequence order, skip this relay's own changes, and deliver each key's current record.
   * Called on a bus hint, on a bus reconnect and by the poll; idempotent and serialized per map.
   */
  catchUp(map: string): Promise<void> {
    const state = this.catalog.peek(map)
    if (state === undefined) return Promise.resolve()
    const previous = this.#catchingUp.get(map) ?? Promise.resolve()
    const next = previous.then(() => this.#catchUp(state)).catch((error: unknown) => this.#logger.error({ err: error, map }, 'catching up with other relays failed'))
    this.#catchingUp.set(map, next)
    void next.finally(() => {
      if (this.#catchingUp.get(map) === next) this.#catchingUp.delete(map)
    })
    return next
  }

  async #catchUp(state: MapState): Promise<void> {
    for (;;) {
      const entries = await this.store.readLog(state.map, state.head, SCAN_PAGE)
      if (entries.length === 0) return
      const remote = entries.filter((entry) => !state.ahead.has(entry.seq))
      // The first entry of a key holds what it was before the changes this relay missed.
      const first = new Map<string, Value | undefined>()
      for (const entry of remote) if (!first.has(entry.key)) first.set(entry.key, entry.before)
      const keys = [...first.keys()]
      const records = keys.length === 0 ? [] : await this.store.getRecords(state.map, keys)
      const kind = state.kind ?? (await this.store.mapInfo(state.map))?.kind
      if (kind === undefined) return
      const last = (entries[entries.length - 1] as { seq: number }).seq
      const applied: Applied[] = []
      keys.forEach((key, i) => {
        const record = records[i]
        if (record !== undefined) applied.push({ map: state, kind, key, previous: undefined, state: record.state, seq: record.seq, origin: REMOTE_ORIGIN, writerUpToDate: false, before: first.get(key) })
      })
      state.caughtUp(kind, last)
      if (applied.length > 0) this.#enqueueFanOut(applied)
      if (entries.length < SCAN_PAGE) return
    }
  }

  /**
   * Checks every watched map against the store's head and catches up those behind: the
   * safety net under the bus's hints (a hint lost while the bus was down costs at most one
   * poll interval). Returns how many maps were behind.
   */
  async poll(): Promise<number> {
    let behind = 0
    for (const state of [...this.catalog.watched()]) {
      const info = await this.store.mapInfo(state.map)
      if (info !== undefined && info.head > state.head) {
        behind++
        await this.catchUp(state.map)
      }
    }
    return behind
  }

  /** Resolves once every fan-out queued so far has been delivered (tests, drain). */
  delivered(): Promise<void> {
    return this.#fanOut
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
    while (this.#inflight.size > 0 || this.#queue.length > 0 || this.#committing) {
      if (this.#inflight.size > 0) await Promise.allSettled([...this.#inflight])
      else await new Promise((resolve) => setImmediate(resolve))
    }
    await this.#fanOut
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
  async collectTombstones(now: number, horizonMs: number): Promise<number> {
    const cutoff = now - horizonMs
    const collectable = (record: SyncRecord): boolean => {
      const lww = record.state as LwwRecordState
      return isTombstone(lww) && decodeStamp(lww.deleted).wall < cutoff
    }
    let collected = 0
    for (const map of await this.store.syncMaps()) {
      const info = await this.store.mapInfo(map)
      if (info?.kind !== 'lww') continue
      let after: string | undefined
      for (;;) {
        const page = await this.store.scanRecords(map, after === undefined ? { limit: SCAN_PAGE } : { after, limit: SCAN_PAGE })
        const doomed = page.filter(collectable).map((r) => r.key)
        if (doomed.length > 0) {
          // The store re-checks inside its transaction: a key revived meanwhile stays.
          const removed = await this.store.removeRecords(map, doomed, collectable)
          collected += removed.length
          const state = this.catalog.peek(map)
          if (state !== undefined && removed.length > 0) state.forgetTree()
        }
        if (page.length < SCAN_PAGE) break
        after = (page[page.length - 1] as SyncRecord).key
      }
    }
    return collected
  }

  /** Keeps at most `changeLogEntries` log entries per map; returns how many were dropped. */
  async trimLogs(): Promise<number> {
    let dropped = 0
    for (const map of await this.store.syncMaps()) {
      const info = await this.store.mapInfo(map)
      if (info === undefined) continue
      const through = info.head - this.#options.changeLogEntries
      if (through <= info.floor) continue
      dropped += await this.store.trimLog(map, through)
      const state = this.catalog.peek(map)
      if (state !== undefined) state.floor = Math.max(state.floor, through)
    }
    return dropped
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
