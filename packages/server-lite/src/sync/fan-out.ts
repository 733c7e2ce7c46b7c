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
  /** Delivers records (already projected) and move-outs; `seq` is the newest map sequence number they cover. */
  deliver(changes: readonly { key: string; state: CrdtState }[], moveOut: readonly string[], seq: number): void
  /** The session it belongs to (compared by identity). */
  readonly owner: object
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
        const read = others.length === 0 ? [] : await this.#store.getRecords(change.map.map, others)
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
