/**
 * Live fan-out: committed changes go to every subscription they touch, in commit order,
 * one commit at a time (a window may need to read records). Also the catch-up with other
 * relays sharing the store: their changes reach the store's log, not this process, and are
 * fanned out from there on a bus hint, a bus reconnect or the poll.
 */
import type { CollectionKind, CrdtState, MapHint, Value } from '@outpost/core'
import type { Logger } from 'pino'
import { SCAN_PAGE } from './jobs'
import type { MapCatalog, MapState } from './map-catalog'
import type { ShapeView } from './shape-view'
import type { RelayStore } from './sync-service'

/** A subscription as the fan-out sees it. */
export interface Subscriber {
  readonly sub: number
  readonly view: ShapeView
  readonly map: string
  /**
   * Delivers records (already projected) and move-outs; `seq` is the newest map sequence
   * number they cover. `shared`: other subscribers receive the very same delivery, and
   * work derived from it alone (framing, encoding) may be done once for all of them.
   */
  deliver(changes: readonly OutRecord[], moveOut: readonly string[], seq: number, shared?: SharedDelivery): void
  /** The session it belongs to (compared by identity). */
  readonly owner: object
}

/** A record as a subscriber receives it (projected on its view's fields). */
export interface OutRecord {
  readonly key: string
  readonly state: CrdtState
}

/**
 * One delivery that several subscribers of a view receive alike (the same records,
 * move-outs and sequence number): what each would derive from it on its own (its frames,
 * their encoding in a wire version) is derived once, by the first that asks, and reused.
 */
export class SharedDelivery {
  readonly #work = new Map<string, unknown>()

  /** What `make` gives, made once per `key` for every recipient of this delivery. */
  once<T>(key: string, make: () => T): T {
    if (this.#work.has(key)) return this.#work.get(key) as T
    const made = make()
    this.#work.set(key, made)
    return made
  }
}

/** What one subscriber receives from one batch of commits. */
interface Entry {
  readonly changes: OutRecord[]
  readonly moveOut: string[]
  seq: number
}

/** One committed change, as fan-out and the catalog see it. */
export interface Applied {
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
export const REMOTE_ORIGIN = Object.freeze({})

/** The fan-out and catch-up of one relay; see the module comment. */
export class FanOut {
  readonly #store: RelayStore
  readonly #catalog: MapCatalog
  readonly #logger: Logger
  /** Catch-up runs per map, one at a time. */
  readonly #catchingUp = new Map<string, Promise<void>>()
  /** Fan-out runs in commit order, one commit at a time (a window may need to read records). */
  #fanOut: Promise<void> = Promise.resolve()

  constructor(store: RelayStore, catalog: MapCatalog, logger: Logger) {
    this.#store = store
    this.#catalog = catalog
    this.#logger = logger
  }

  /** Queues committed changes for delivery, after every commit queued before. */
  enqueue(applied: readonly Applied[]): void {
    this.#fanOut = this.#fanOut.then(() => this.#deliver(applied)).catch((error: unknown) => this.#logger.error({ err: error }, 'fan-out failed'))
  }

  /** Other relays committed `hints`: catch up each map this relay holds and has not reached yet. */
  hinted(hints: readonly MapHint[]): void {
    for (const hint of hints) {
      const state = this.#catalog.peek(hint.map)
      if (state !== undefined && hint.seq > state.head) void this.catchUp(hint.map)
    }
  }

  /**
   * Sends committed changes to every subscription they touch, in commit order. The
   * subscribers of a view receive the same records (projected once for the view) in one
   * delivery they share, so framing and encoding it is done once for them all; only a
   * subscriber whose delivery differs gets one of its own: the writer's subscriptions
   * (their own up-to-date write is not echoed; a write that lost is), and one that joined
   * the view while this batch was being delivered (it gets only what came after).
   */
  async #deliver(applied: readonly Applied[]): Promise<void> {
    // A subscriber's own delivery, split off from its view's shared one (a copy of it so far) when it first differs.
    const own = new Map<Subscriber, Entry>()
    const shared = new Map<ShapeView, { readonly entry: Entry; readonly members: Set<Subscriber> }>()
    const ownEntry = (view: ShapeView, subscriber: Subscriber): Entry => {
      let entry = own.get(subscriber)
      if (entry !== undefined) return entry
      const group = shared.get(view)
      if (group !== undefined && group.members.delete(subscriber)) entry = { changes: [...group.entry.changes], moveOut: [...group.entry.moveOut], seq: group.entry.seq }
      else entry = { changes: [], moveOut: [], seq: 0 }
      own.set(subscriber, entry)
      return entry
    }
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
            const entry = ownEntry(view, subscriber)
            if (view.isMember(change.key, change.state)) entry.changes.push({ key: change.key, state: view.project(change.state) })
            else if (!view.plain) entry.moveOut.push(change.key)
          }
        }
        if (effect.send.length === 0 && effect.moveOut.length === 0) continue
        // A window may pull in another record: read it (the changed one is at hand).
        const others = effect.send.filter((k) => k !== change.key)
        const read = others.length === 0 ? [] : await this.#store.getRecords(change.map.map, others)
        const states = new Map<string, CrdtState>(others.map((k, i) => [k, read[i]?.state] as const).filter((e): e is [string, CrdtState] => e[1] !== undefined))
        states.set(change.key, change.state)
        for (const [key, state] of states) view.track(key, state)
        const records: OutRecord[] = []
        for (const key of effect.send) {
          const state = states.get(key)
          if (state !== undefined) records.push({ key, state: view.project(state) })
        }
        // Subscribers present at the view's first change of the batch share its delivery until they differ.
        let group = shared.get(view)
        const first = group === undefined
        if (group === undefined) {
          group = { entry: { changes: [], moveOut: [], seq: 0 }, members: new Set() }
          shared.set(view, group)
        }
        for (const subscriber of view.subscribers as Set<Subscriber>) {
          const mine = subscriber.owner === change.origin
          if (!mine && !own.has(subscriber)) {
            if (group.members.has(subscriber)) continue
            if (first) {
              group.members.add(subscriber)
              continue
            }
          }
          const entry = ownEntry(view, subscriber)
          entry.seq = Math.max(entry.seq, change.seq)
          const skipOwn = mine && change.writerUpToDate
          for (const record of records) if (!(skipOwn && record.key === change.key)) entry.changes.push(record)
          entry.moveOut.push(...effect.moveOut)
        }
        group.entry.seq = Math.max(group.entry.seq, change.seq)
        group.entry.changes.push(...records)
        group.entry.moveOut.push(...effect.moveOut)
      }
    }
    for (const { entry, members } of shared.values()) {
      const delivery = members.size > 1 ? new SharedDelivery() : undefined
      for (const subscriber of members) subscriber.deliver(entry.changes, entry.moveOut, entry.seq, delivery)
    }
    for (const [subscriber, { changes, moveOut, seq }] of own) subscriber.deliver(changes, moveOut, seq)
  }

  /**
   * Fans out what other relays sharing the store committed to `map` since this relay's
   * `head` for it (their changes reach the store's log, not this process): read the log in
   * sequence order, skip this relay's own changes, and deliver each key's current record.
   * Called on a bus hint, on a bus reconnect and by the poll; idempotent and serialized per map.
   */
  catchUp(map: string): Promise<void> {
    const state = this.#catalog.peek(map)
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
      const entries = await this.#store.readLog(state.map, state.head, SCAN_PAGE)
      if (entries.length === 0) return
      const remote = entries.filter((entry) => !state.ahead.has(entry.seq))
      // The first entry of a key holds what it was before the changes this relay missed.
      const first = new Map<string, Value | undefined>()
      for (const entry of remote) if (!first.has(entry.key)) first.set(entry.key, entry.before)
      const keys = [...first.keys()]
      const records = keys.length === 0 ? [] : await this.#store.getRecords(state.map, keys)
      const kind = state.kind ?? (await this.#store.mapInfo(state.map))?.kind
      if (kind === undefined) return
      const last = (entries[entries.length - 1] as { seq: number }).seq
      const applied: Applied[] = []
      keys.forEach((key, i) => {
        const record = records[i]
        if (record !== undefined) applied.push({ map: state, kind, key, previous: undefined, state: record.state, seq: record.seq, origin: REMOTE_ORIGIN, writerUpToDate: false, before: first.get(key) })
      })
      state.caughtUp(kind, last)
      if (applied.length > 0) this.enqueue(applied)
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
    for (const state of [...this.#catalog.watched()]) {
      const info = await this.#store.mapInfo(state.map)
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
}
