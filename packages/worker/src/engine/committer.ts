/**
 * The committer: the one writer of the store. A local write is applied to memory at once
 * and queued; the committer then (one transaction at a time) commits record page + outbox
 * entry + call id + clock in ONE store transaction and resolves the caller. Remote changes
 * are already in memory when they reach it; it flushes them in large batches (see
 * {@link REMOTE_FLUSH_RECORDS}), except a paced slice, which it flushes in small steps while
 * it streams (see {@link SLICE_FLUSH_RECORDS}). Other
 * store work that must not interleave with local commits (taking back refused writes,
 * re-stamping) runs as a job between them.
 *
 * Because every store write is built from the current memory state by this one
 * committer, a later flush can never overwrite a newer local write.
 */
import { assertChangeFits, mergeState, serializeError, type Change, type CollectionKind, type Hlc, type Store, type StoreEntry, type Value } from '@outpost/core'
import type { WriteReceipt } from '../engine-api'
import { OUTBOX_COLLECTION, outboxKey, type Outbox, type OutboxEntry } from '../outbox'
import type { AnyState, ShapeReplica } from '../sync/shape-replica'
import type { CallLedger } from './call-ledger'
import { mapKey, type LoadedMap, type MapCache } from './map-cache'
import type { ShapeSet } from './shape-set'
import type { EngineState } from './start-up'

/** Remote changes buffered in memory before they are flushed to the store in one transaction. */
export const REMOTE_FLUSH_RECORDS = 50_000
/**
 * Records of a paced slice buffered before they are flushed. A slice streams in Merkle leaf
 * (key hash) order, the order of the store's pages, so each flush fills the next pages and
 * reads back at most the one page the previous flush left at the boundary: small flushes
 * cost no more in all than one big one. Flushed while the slice streams (one at a time; the
 * next takes whatever arrived meanwhile), the store keeps up with the stream and only the
 * last few frames are left to write when `synced` arrives. A big flush held the worker's
 * thread for over a second: no frame was read (the relay ran out of credit) and the last
 * one ended the sync behind it. A replay (keys in log order) touches pages at random, so
 * it keeps the big batches.
 */
export const SLICE_FLUSH_RECORDS = 4_000
/** How long (ms) after the last remote batch buffered changes are flushed. */
export const REMOTE_FLUSH_DELAY_MS = 40
/** Longest (ms) a remote change stays only in memory while changes keep streaming in. */
export const REMOTE_FLUSH_MAX_WAIT_MS = 2_000

/** A local write as the app made it: the delta is built from the key's current state. */
export interface LocalWrite {
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

/** What the committer reads and writes. */
export interface CommitterParts {
  readonly store: Store
  readonly hlc: Hlc
  readonly now: () => number
  readonly state: EngineState
  readonly maps: MapCache
  readonly shapes: ShapeSet
  readonly outbox: Outbox
  readonly calls: CallLedger
  /** The op id the first write of this run gets. */
  readonly nextOpId: number
}

/** Whom the committer tells what happened. */
export interface CommitterHooks {
  /** Memory changed: live queries are owed a callback. */
  notify(): void
  /** Local writes entered the outbox: the sync client may send them. */
  outboxChanged(): void
  /** Something status reports changed. */
  statusChanged(): void
}

/** The store's one writer. */
export class Committer {
  readonly #store: Store
  readonly #hlc: Hlc
  readonly #now: () => number
  readonly #state: EngineState
  readonly #maps: MapCache
  readonly #shapes: ShapeSet
  readonly #outbox: Outbox
  readonly #calls: CallLedger
  readonly #hooks: CommitterHooks
  #nextOpId: number
  #closed = false

  /** Store work that must not interleave with local commits (rejections, re-stamping), run one at a time by the committer. */
  readonly #jobs: (() => Promise<void>)[] = []
  readonly #pendingLocal: LocalOp[] = []
  /** Local writes whose commit is under way: in memory, not yet in the outbox. */
  #committingLocal: readonly LocalOp[] = []
  /** Remote changes in memory waiting for the next flush: collection → keys (no per-record string or object: an initial sync marks every record). */
  #dirty = new Map<string, Set<string>>()
  /** The keys in {@link #dirty}, all collections together. */
  #dirtyCount = 0
  /** Filtered-shape membership changes waiting for the next flush: collection\0key → present. */
  readonly #memberDirty = new Map<string, { collection: string; key: string; present: boolean }>()
  #committing = false
  #flushTimer: ReturnType<typeof setTimeout> | undefined
  #flushRequested = false
  #firstDirtyAt = 0
  /** lastSyncAt changed and is not stored yet. */
  #metaDirty = false
  #idle: (() => void)[] = []

  constructor(parts: CommitterParts, hooks: CommitterHooks) {
    this.#store = parts.store
    this.#hlc = parts.hlc
    this.#now = parts.now
    this.#state = parts.state
    this.#maps = parts.maps
    this.#shapes = parts.shapes
    this.#outbox = parts.outbox
    this.#calls = parts.calls
    this.#nextOpId = parts.nextOpId
    this.#hooks = hooks
  }

  /** The op id the next local write gets: every lower id was written. */
  get nextOpId(): number {
    return this.#nextOpId
  }

  /** Local writes applied to memory and not in the outbox yet (queued or being committed), as changes with the clock offset they were stamped under. */
  pendingLocal(): { change: Change; offset: number }[] {
    return [...this.#committingLocal, ...this.#pendingLocal].map((op) => ({ change: { kind: op.kind, map: op.map, key: op.key, state: op.delta } as Change, offset: op.offset }))
  }

  /**
   * Applies a local write to memory at once — live queries in every tab see it without
   * waiting for IndexedDB (optimistic, as DESIGN §3 asks) — and queues its commit. The
   * returned promise (the app's `await`) still resolves only once the record and its
   * outbox entry are durable; if that commit fails, memory is rolled back to the store.
   * The write's map must be loaded.
   */
  write(write: LocalWrite, callId: string | undefined): Promise<WriteReceipt> {
    if (callId !== undefined) {
      // A retried call (e.g. re-sent to a new leader tab after the old one closed unanswered)
      // gets the first call's receipt: a counter increment never counts twice.
      const earlier = this.#calls.recall(callId)
      if (earlier !== undefined) return earlier
    }
    const loaded = this.#maps.get(write.kind, write.map) as LoadedMap
    const current = loaded.states.get(write.key)
    const delta = write.makeDelta(current)
    // Refused before anything is stored: a change (or a record) that could never be sent
    // would otherwise sit in the outbox forever and hold its map's subscribers hostage.
    const where = `${write.map}/${write.key.slice(0, 64)}`
    assertChangeFits({ kind: write.kind, map: write.map, key: write.key, state: delta } as Change, this.#state.limits, where)
    if (current !== undefined) {
      const merged = mergeState(write.kind, current as never, delta as never)
      assertChangeFits({ kind: write.kind, map: write.map, key: write.key, state: merged } as Change, this.#state.limits, `the record ${where} after this write`)
    }
    this.#maps.merge(loaded, write.key, delta)
    this.#hooks.notify()
    const receipt = new Promise<WriteReceipt>((resolve, reject) => {
      this.#pendingLocal.push({ kind: write.kind, map: write.map, key: write.key, delta, callId, offset: this.#hlc.offset, resolve, reject })
      this.#pump()
    })
    if (callId !== undefined) this.#calls.remember(callId, receipt)
    return receipt
  }

  /** Runs `work` in the committer, after queued local writes and before later ones; resolves (or rejects) with it. */
  job<T>(work: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#jobs.push(() => work().then(resolve, reject))
      this.#pump()
    })
  }

  /** Resolves when every queued write and buffered remote change is in the store (flushing now, without waiting for the timer). */
  flush(): Promise<void> {
    if (this.#flushTimer !== undefined) clearTimeout(this.#flushTimer)
    this.#flushTimer = undefined
    this.#flushRequested = true
    return new Promise((resolve) => {
      this.#idle.push(resolve)
      this.#pump()
    })
  }

  /** True once the engine is closing: nothing more is committed. */
  get closed(): boolean {
    return this.#closed
  }

  /** Stops committing (the engine is closing; call after {@link flush}). */
  close(): void {
    this.#closed = true
    if (this.#flushTimer !== undefined) clearTimeout(this.#flushTimer)
  }

  /** A remote change of `collection/key` is in memory and waits for the next flush. */
  markDirty(collection: string, key: string): void {
    if (this.#dirtyCount === 0) this.#firstDirtyAt = this.#now()
    this.#addDirty(collection, key)
  }

  #addDirty(collection: string, key: string): void {
    let keys = this.#dirty.get(collection)
    if (keys === undefined) {
      keys = new Set()
      this.#dirty.set(collection, keys)
    }
    const before = keys.size
    keys.add(key)
    this.#dirtyCount += keys.size - before
  }

  /** A key joined or left a filtered shape; stored with the next flush. */
  setMember(shape: ShapeReplica, key: string, present: boolean): void {
    if (!shape.filtered || shape.members.has(key) === present) return
    if (present) shape.members.add(key)
    else shape.members.delete(key)
    this.#memberDirty.set(`${shape.membersCollection}\u0000${key}`, { collection: shape.membersCollection, key, present })
  }

  /** The last sync time changed: store it with the next flush, which is due now. */
  syncedAtChanged(): void {
    this.#metaDirty = true
    this.#flushRequested = true
    this.#pump()
  }

  /**
   * Flushes buffered remote changes when the stream pauses ({@link REMOTE_FLUSH_DELAY_MS}
   * after the last batch), when {@link REMOTE_FLUSH_RECORDS} are buffered, or at most
   * {@link REMOTE_FLUSH_MAX_WAIT_MS} after the first, so an initial sync writes few, large
   * transactions. A `bulk` batch (part of a paced slice or replay) does not flush on a
   * pause: a slice pauses whenever the relay waits for credit, and its end (`synced`, see
   * {@link syncedAtChanged}) flushes anyway. A `'slice'` batch flushes every
   * {@link SLICE_FLUSH_RECORDS}.
   */
  scheduleFlush(bulk: boolean | 'slice' = false): void {
    if (this.#dirtyCount === 0 && this.#memberDirty.size === 0) return
    if (this.#flushTimer !== undefined) clearTimeout(this.#flushTimer)
    this.#flushTimer = undefined
    const waited = this.#now() - this.#firstDirtyAt
    const due = bulk === 'slice' ? SLICE_FLUSH_RECORDS : REMOTE_FLUSH_RECORDS
    if (this.#dirtyCount >= due || waited >= REMOTE_FLUSH_MAX_WAIT_MS) {
      this.#flushRequested = true
      this.#pump()
      return
    }
    this.#flushTimer = setTimeout(() => {
      this.#flushTimer = undefined
      this.#flushRequested = true
      this.#pump()
    }, bulk ? REMOTE_FLUSH_MAX_WAIT_MS - waited : Math.min(REMOTE_FLUSH_DELAY_MS, REMOTE_FLUSH_MAX_WAIT_MS - waited))
  }

  #pump(): void {
    if (this.#committing || this.#closed) return
    // Local writes queued before a job commit first: a re-stamping job must see them in the outbox.
    if (this.#pendingLocal.length > 0) {
      this.#committing = true
      void this.#commitLocal().finally(() => {
        this.#committingLocal = []
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
    } else if (this.#flushRequested && (this.#dirtyCount > 0 || this.#memberDirty.size > 0 || this.#metaDirty)) {
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

  async #commitLocal(): Promise<void> {
    // Still pending until they are in the outbox (#pump clears this after the commit): a move-out meanwhile must not drop their keys.
    const ops = (this.#committingLocal = this.#pendingLocal.splice(0))
    const store = this.#store
    const hlc = this.#hlc
    const touched = new Map<string, { op: LocalOp; loaded: LoadedMap }>()
    const results: { op: LocalOp; entry: OutboxEntry }[] = []
    const puts: StoreEntry[] = []
    const memberPuts: { shape: ShapeReplica; op: LocalOp; loaded: LoadedMap }[] = []
    let opId = this.#nextOpId
    const at = this.#now()
    for (const op of ops) {
      const loaded = this.#maps.get(op.kind, op.map) as LoadedMap
      const entry: OutboxEntry = { opId: opId++, change: { kind: op.kind, map: op.map, key: op.key, state: op.delta } as Change, at, offset: op.offset }
      results.push({ op, entry })
      touched.set(mapKey(op.kind, op.map, op.key), { op, loaded })
      puts.push({ collection: OUTBOX_COLLECTION, key: outboxKey(entry.opId), value: entry as unknown as Value })
      if (op.callId !== undefined) puts.push(this.#calls.entry(op.callId, entry.opId, at))
    }
    for (const { op, loaded } of touched.values()) {
      // Memory already holds every queued write (and any remote merge) for this key.
      const state = loaded.states.get(op.key)
      if (state === undefined) continue
      puts.push({ collection: loaded.collection, key: op.key, value: state as unknown as Value })
      // Filtered shapes learn local writes that match them, in the same transaction.
      for (const shape of this.#shapes.all()) {
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
        // The write's arguments were checked where they entered the engine (`engine-methods.ts`).
        checked: true,
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
    this.#hooks.outboxChanged()
    this.#hooks.statusChanged()
  }

  /**
   * A local commit failed (e.g. quota): memory ran ahead of the store, so the touched keys
   * go back to what is durable plus the local writes queued behind the failed ones (made
   * during its commit or the reads here: they are in memory, commit next and are reported
   * durable, so they stay), and live queries show that. A remote change merged into one of
   * them meanwhile is dropped from memory; the next reconciliation brings it back.
   */
  async #rollBack(keys: readonly { loaded: LoadedMap; key: string }[]): Promise<void> {
    const store = this.#store
    for (const { loaded, key } of keys) {
      let stored: AnyState | undefined
      try {
        stored = (await store.get(loaded.collection, key)) as unknown as AnyState | undefined
      } catch (error) {
        onRollBackReadError(error)
        stored = undefined
      }
      for (const op of this.#pendingLocal) {
        if (op.kind === loaded.kind && op.map === loaded.map && op.key === key) stored = stored === undefined ? op.delta : mergeState(op.kind, stored as never, op.delta as never)
      }
      this.#maps.replace(loaded, key, stored)
    }
    this.#hooks.notify()
  }

  async #flushRemote(): Promise<void> {
    const store = this.#store
    const dirty = this.#dirty
    const members = [...this.#memberDirty.values()]
    this.#metaDirty = false
    this.#dirty = new Map()
    this.#dirtyCount = 0
    this.#memberDirty.clear()
    const puts: StoreEntry[] = []
    const deletes: { collection: string; key: string }[] = []
    for (const [collection, keys] of dirty) {
      for (const key of keys) {
        const state = this.#maps.stateIn(collection, key)
        if (state === undefined) deletes.push({ collection, key })
        else puts.push({ collection, key, value: state as unknown as Value })
      }
    }
    for (const { collection, key, present } of members) {
      if (present) puts.push({ collection, key, value: true })
      else deletes.push({ collection, key })
    }
    const meta = this.#state.lastSyncAt === null ? [] : [{ key: 'lastSyncAt', value: this.#state.lastSyncAt }]
    try {
      // Memory holds only checked data: local writes (checked as they entered the engine),
      // remote changes (checked as they arrived, `shape-sync.ts`) and what the store held.
      await store.commit({ puts, deletes, meta: [...meta, { key: 'hlc', value: this.#hlc.last }, { key: 'clockFloor', value: this.#state.floor }], checked: true })
    } catch (error) {
      // Keep them dirty: the next flush tries again; memory (and the relay) still hold them.
      for (const [collection, keys] of dirty) for (const key of keys) this.#addDirty(collection, key)
      for (const m of members) if (!this.#memberDirty.has(`${m.collection}\u0000${m.key}`)) this.#memberDirty.set(`${m.collection}\u0000${m.key}`, m)
      this.#metaDirty = true
      this.scheduleFlush()
      this.#state.lastError = serializeError(error)
      this.#hooks.statusChanged()
    }
  }
}

/** The store could not be read while undoing a failed commit: the key is dropped from memory and reloads on next use. */
function onRollBackReadError(error: unknown): void {
  if (typeof console !== 'undefined') console.warn('[outpost] could not re-read a key after a failed commit; it reloads from storage on next use', error)
}
