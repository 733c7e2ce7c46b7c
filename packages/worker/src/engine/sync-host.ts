/**
 * The sync host: the engine as the sync client sees it ({@link SyncHost}). Remote changes
 * merge into memory at once (live queries update) and wait in the committer for the next
 * batched flush; move-outs and resyncs drop records from memory without deleting them for
 * anyone; the relay's acks and refusals settle the outbox; a clock correction re-stamps
 * pending writes. Store work that must not interleave with local commits runs as a
 * committer job.
 */
import {
  serializeError,
  isOutpostError,
  lwwMaxStamp,
  maxStamp as laterStamp,
  mergeState,
  ownPart,
  restampState,
  stampsOf,
  withoutWrite,
  type Change,
  type CollectionKind,
  type Hlc,
  type LockLostMessage,
  type ReplicaId,
  type SerializedError,
  type Stamp,
  type Store,
  type StoreEntry,
  type TopicMessage,
  type Value,
  type WireLimits,
} from '@outpost/core'
import type { Coordinator } from '../coordination/coordinator'
import { OUTBOX_COLLECTION, outboxKey, type Outbox, type OutboxEntry } from '../outbox'
import { REJECTED_META_KEY, type RejectionLog } from '../rejections'
import { clockFloor, restampEntries } from '../restamp'
import type { AnyState, ShapeReplica } from '../sync/shape-replica'
import type { Bulk } from '../sync/shape-session'
import type { SyncClient, SyncHost } from '../sync/sync-client'
import type { Committer } from './committer'
import type { ConnectionHistory } from './connection-history'
import type { LiveQueries } from './live-queries'
import { COLLECTION_KINDS, mapKey, type LoadedMap, type MapCache } from './map-cache'
import type { ShapeSet } from './shape-set'
import type { EngineState } from './start-up'
import type { StatusBoard } from './status-board'
import type { WriteProgress } from './write-progress'

/** What the sync host reads and drives. */
export interface SyncHostParts {
  readonly store: Store
  readonly hlc: Hlc
  readonly replicaId: ReplicaId
  readonly now: () => number
  readonly state: EngineState
  readonly maps: MapCache
  readonly shapes: ShapeSet
  readonly committer: Committer
  readonly outbox: Outbox
  readonly rejections: RejectionLog
  readonly progress: WriteProgress
  readonly live: LiveQueries
  readonly status: StatusBoard
  /** The connection's recent transitions (for the inspector). */
  readonly history: ConnectionHistory
  /** The sync client driving this host (it exists once the host is handed to it). */
  readonly sync: () => SyncClient | undefined
  /** The coordination primitives (created after the sync client). */
  readonly coordinator: () => Coordinator | undefined
}

/** The relay limits could not be remembered: offline writes after a restart use the defaults until the next welcome. */
function onMetaWriteError(error: unknown): void {
  if (typeof console !== 'undefined') console.warn('[outpost] could not store the relay limits; the defaults apply offline until the next connection', error)
}

/** Matches a pending write (outbox entry or queued local write) of `map/key` of `kind`. */
function of(kind: CollectionKind, map: string, key: string): (pending: { change: Change }) => boolean {
  return ({ change }) => change.kind === kind && change.map === map && change.key === key
}

/** The engine's side of the sync client. */
export class EngineSyncHost implements SyncHost {
  readonly #p: SyncHostParts
  #receivedRecords = 0

  constructor(parts: SyncHostParts) {
    this.#p = parts
  }

  get hlc(): Hlc {
    return this.#p.hlc
  }

  get replicaId(): ReplicaId {
    return this.#p.replicaId
  }

  get lastSyncAt(): number | null {
    return this.#p.state.lastSyncAt
  }

  /** Records merged from the relay since start. */
  get receivedRecords(): number {
    return this.#receivedRecords
  }

  shapeReplicas(): ShapeReplica[] {
    return this.#p.shapes.all()
  }

  pendingOps(): Outbox {
    return this.#p.outbox
  }

  async applyChanges(replica: ShapeReplica | undefined, changes: readonly Change[], moveOut: readonly string[], bulk: Bulk = false): Promise<void> {
    const { maps: cache, committer } = this.#p
    // Every map the frame touches is loaded before anything merges. A frame is of one map as
    // a rule: its changes are looked up once per run of the same map, not once each.
    const loadedOf: LoadedMap[] = new Array<LoadedMap>(changes.length)
    let last: LoadedMap | undefined
    for (let i = 0; i < changes.length; i++) {
      const change = changes[i] as Change
      if (last === undefined || last.kind !== change.kind || last.map !== change.map) last = await cache.ensure(change.kind, change.map)
      loadedOf[i] = last
    }
    // A slice or a replay streams (paced): the shape's tree is rebuilt once when next read,
    // not updated per record. Nothing reads it meanwhile (such a sync settles without a descent).
    if (bulk && replica !== undefined && changes.length > 0) replica.invalidate()
    let maxStamp: Stamp | null = null
    for (let i = 0; i < changes.length; i++) {
      const change = changes[i] as Change
      const loaded = loadedOf[i] as LoadedMap
      if (replica !== undefined) committer.setMember(replica, change.key, true)
      if (cache.merge(loaded, change.key, change.state)) committer.markDirty(loaded.collection, change.key)
      if (change.kind === 'lww') {
        const s = lwwMaxStamp(change.state)
        if (s !== null && (maxStamp === null || s > maxStamp)) maxStamp = s
      }
      this.#receivedRecords++
    }
    if (maxStamp !== null) {
      try {
        this.hlc.receive(maxStamp)
        this.#p.state.floor = laterStamp(this.#p.state.floor, maxStamp)
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
        if (COLLECTION_KINDS.some((kind) => this.#hasPending(kind, map, key))) {
          // The cursor (saved already, or arriving with this sync) would resume past this
          // move-out: drop it, so the next sync reconciles by Merkle and moves the key out then.
          replica.moveOutDeferred = true
          if (replica.cursor !== undefined) void this.saveCursor(replica, undefined).catch((error: unknown) => this.connectionChanged(serializeError(error)))
          continue
        }
        committer.setMember(replica, key, false)
        replica.track('lww', map, key, undefined)
        if (this.#p.shapes.coveredElsewhere(replica, map, key)) continue
        this.#dropUnlessPending(map, key)
      }
    }
    committer.scheduleFlush(bulk)
    this.#p.live.scheduleNotify()
  }

  /** Drops `map/key` of every kind from memory (move-out / resync), except where a local write of it is pending. */
  #dropUnlessPending(map: string, key: string): void {
    for (const kind of COLLECTION_KINDS) {
      const loaded = this.#p.maps.get(kind, map)
      if (loaded !== undefined && !this.#hasPending(kind, map, key) && this.#p.maps.drop(loaded, key)) this.#p.committer.markDirty(loaded.collection, key)
    }
  }

  /** A local write of the key is not acknowledged yet: in the outbox, or in memory and still on its way there (the committer's). */
  #hasPending(kind: CollectionKind, map: string, key: string): boolean {
    return this.#p.outbox.pending().some(of(kind, map, key)) || this.#p.committer.pendingLocal().some(of(kind, map, key))
  }

  /** Drops a shape's local data (past the tombstone horizon) so it re-syncs from empty. */
  async resetShape(replica: ShapeReplica): Promise<void> {
    // The cursor goes first, durably: a cursor must never outlive the data it vouches for.
    await this.saveCursor(replica, undefined)
    const map = replica.shape.map
    const keys = [...replica.tree.keys()]
    for (const key of keys) {
      this.#p.committer.setMember(replica, key, false)
      if (this.#p.shapes.coveredElsewhere(replica, map, key)) continue
      this.#dropUnlessPending(map, key)
    }
    replica.clear()
    // Keys kept for pending writes stay in the tree: the relay will be told about them.
    for (const kind of COLLECTION_KINDS) {
      const loaded = this.#p.maps.get(kind, map)
      if (loaded !== undefined) for (const [key, state] of loaded.states) replica.track(kind, map, key, state)
    }
    this.#p.committer.scheduleFlush()
    this.#p.live.scheduleNotify()
  }

  /** Keeps a shape's resume cursor, written only once the data it covers is in the store; undefined drops it. */
  async saveCursor(replica: ShapeReplica, cursor: string | undefined): Promise<void> {
    if (cursor !== undefined && replica.moveOutDeferred) {
      // This sync left a key the relay moved out (see ShapeReplica.moveOutDeferred): no cursor.
      replica.moveOutDeferred = false
      cursor = undefined
    }
    const generation = cursor === undefined ? ++replica.cursorGeneration : replica.cursorGeneration
    if (cursor !== undefined) await this.#p.committer.flush()
    if (replica.cursorGeneration !== generation || this.#p.committer.closed) return
    replica.cursor = cursor
    await this.#p.store.commit({ meta: [{ key: replica.cursorKey, value: cursor ?? null }] })
  }

  ownPart(change: Change): Change | undefined {
    return ownPart(change, this.#p.replicaId)
  }

  recordsFor(replica: ShapeReplica, keys: readonly string[]): Change[] {
    const out: Change[] = []
    const map = replica.shape.map
    for (const kind of COLLECTION_KINDS) {
      const loaded = this.#p.maps.get(kind, map)
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
    const { outbox, rejections, maps, state, progress } = this.#p
    return this.#p.committer.job(async () => {
      const store = this.#p.store
      const refused = rejected.flatMap(([opId, error]) => {
        const entry = outbox.get(opId)
        return entry === undefined ? [] : [{ entry, error }]
      })
      const refusedIds = new Set(refused.map(({ entry }) => entry.opId))
      const puts: StoreEntry[] = []
      const deletes: { collection: string; key: string }[] = [...ok, ...refusedIds].map((opId) => ({ collection: OUTBOX_COLLECTION, key: outboxKey(opId) }))
      const touched = new Map<string, { loaded: LoadedMap; key: string }>()
      const now = this.#p.now()
      for (const { entry, error } of refused) {
        const { kind, map, key } = entry.change
        rejections.record(entry, error, now)
        const loaded = await maps.ensure(kind, map)
        const current = loaded.states.get(key)
        if (current === undefined) continue
        let next = withoutWrite(kind, current, entry.change.state, this.#p.replicaId) as AnyState
        // Writes to the key still pending (not refused) stay: a counter's own entry totals them all.
        // Those queued in the committer count too: one made during an await above (the load of
        // a map) is in memory but not yet in the outbox, and its slot must not shrink.
        const kept = [...outbox.pendingFor(kind, map, key).filter((other) => !refusedIds.has(other.opId)), ...this.#p.committer.pendingLocal().filter(of(kind, map, key))]
        for (const other of kept) next = mergeState(kind, next as never, other.change.state as never)
        maps.replace(loaded, key, next)
        touched.set(`${loaded.collection}\u0000${key}`, { loaded, key })
      }
      for (const { loaded, key } of touched.values()) {
        const current = loaded.states.get(key)
        if (current === undefined) deletes.push({ collection: loaded.collection, key })
        else puts.push({ collection: loaded.collection, key, value: current as unknown as Value })
      }
      for (const opId of ok) for (const stamp of stampsOf((outbox.get(opId) as OutboxEntry | undefined)?.change ?? ({ kind: 'counter' } as Change))) state.floor = laterStamp(state.floor, stamp)
      const meta = [{ key: 'clockFloor', value: state.floor }, ...(refused.length > 0 ? [{ key: REJECTED_META_KEY, value: rejections.toValue() }] : [])]
      await store.commit({ puts, deletes, meta })
      for (const opId of ok) {
        outbox.remove(opId)
        progress.persisted(opId)
      }
      for (const { entry, error } of refused) {
        outbox.remove(entry.opId)
        state.lastError = error
        progress.refused(entry.opId, error)
      }
      if (touched.size > 0) {
        this.#p.live.scheduleNotify()
        const touchedMaps = new Set([...touched.values()].map(({ loaded }) => loaded.map))
        this.#p.sync()?.repair(this.#p.shapes.all().filter((shape) => touchedMaps.has(shape.shape.map)))
      }
      this.#p.status.schedule()
    })
  }

  sent(opIds: readonly number[]): void {
    this.#p.progress.sent(opIds)
  }

  /**
   * The relay measured this device's clock offset (at `welcome`): pending writes stamped
   * under a different offset are re-stamped (see `restamp.ts`), in memory and in the store,
   * before the sync client reconciles or sends them; the clock rebases at once, so a write
   * made meanwhile already follows corrected time.
   */
  async clockCorrected(): Promise<void> {
    // Awaited by the sync client before a session subscribes: the shapes' maps are in memory
    // then, so the roots they send are complete (start-up leaves them unloaded; see shape-set.ts).
    await this.#p.shapes.loadMaps()
    const { hlc, outbox, maps, committer } = this.#p
    const offset = hlc.offset
    const pending = [...outbox.pending(), ...committer.pendingLocal()]
    const stale = pending.some((entry) => Math.abs(offset - (entry.offset ?? 0)) > 1_000)
    const ahead = hlc.last !== null && hlc.last.localeCompare(hlc.physicalNow().toString(36).padStart(10, '0')) > 0
    if (stale || ahead) hlc.rebase(laterStamp(clockFloor(this.#p.state.floor, pending, offset), null))
    return committer.job(async () => {
      const store = this.#p.store
      const plan = restampEntries(outbox.pending(), offset, (change, mapping) => ({ ...change, state: restampState(change.kind, change.state, mapping) }) as Change)
      const puts: StoreEntry[] = plan.entries.map((entry) => ({ collection: OUTBOX_COLLECTION, key: outboxKey(entry.opId), value: entry as unknown as Value }))
      const touched: { loaded: LoadedMap; key: string }[] = []
      const seen = new Set<string>()
      for (const entry of plan.entries) {
        const { kind, map, key } = entry.change
        const id = mapKey(kind, map, key)
        if (seen.has(id)) continue
        seen.add(id)
        const loaded = await maps.ensure(kind, map)
        const current = loaded.states.get(key)
        if (current === undefined) continue
        const state = restampState(kind, current, plan.mapping) as AnyState
        touched.push({ loaded, key })
        puts.push({ collection: loaded.collection, key, value: state as unknown as Value })
      }
      await store.commit({ puts, meta: [{ key: 'clockOffset', value: offset }, { key: 'hlc', value: hlc.last }] })
      for (const entry of plan.entries) outbox.add(entry)
      // Re-stamped from memory as it is now, not as it was before the commit: a local write
      // (or a remote change) merged meanwhile would otherwise be wiped — a counter increment
      // made during the await was lost, and every later one built on the smaller slot. Such a
      // write is queued or dirty, so its own commit or flush stores the state put back here.
      for (const { loaded, key } of touched) {
        const now = loaded.states.get(key)
        if (now !== undefined) maps.replace(loaded, key, restampState(loaded.kind, now, plan.mapping) as AnyState)
      }
      if (touched.length > 0) this.#p.live.scheduleNotify()
    })
  }

  limitsChanged(limits: WireLimits): void {
    const state = this.#p.state
    if (state.limits.maxFrameBytes === limits.maxFrameBytes && state.limits.maxElements === limits.maxElements) return
    state.limits = limits
    // Remembered for offline writes after a restart; a failure only means the defaults next time.
    void this.#p.store.commit({ meta: [{ key: 'wireLimits', value: { ...limits } }] }).catch(onMetaWriteError)
  }

  synced(serverTime: number): void {
    this.#p.state.lastSyncAt = serverTime
    this.#p.committer.syncedAtChanged()
    this.#p.status.schedule()
  }

  connectionChanged(error?: SerializedError): void {
    if (error !== undefined) this.#p.state.lastError = error
    this.#p.history.observe(this.#p.sync()?.state ?? 'offline', this.#p.now(), error)
    // Every state is reported, even one that lasts a microtask (e.g. auth-expired).
    this.#p.status.broadcast()
  }

  coordinationMessage(message: TopicMessage | LockLostMessage): void {
    this.#p.coordinator()?.onMessage(message)
  }

  sessionChanged(up: boolean): void {
    this.#p.coordinator()?.sessionChanged(up)
  }

  topicRefused(topic: string, error: SerializedError): boolean {
    return this.#p.coordinator()?.topicRefused(topic, error) ?? false
  }
}
