/**
 * The inspector feed: pushes {@link InspectorSnapshot}s (built by `inspector.ts`) to
 * `subscribeInspector` callbacks in every tab.
 *
 * The feed pushes a fresh snapshot at once, then after changes (status reports, any key
 * changing in memory), at most every {@link FEED_INTERVAL_MS}, plus one settling push
 * {@link SETTLE_MS} after a burst (a cursor is saved after the sync that produced it). A
 * tab that vanished never unsubscribes, so at most {@link INSPECTOR_LIMITS.subscribers}
 * subscriptions are served and a new one beyond that ends the oldest. While anyone
 * listens, the feed holds one status subscription: status reports (writes, acks,
 * refusals, connection, sync) drive it, as key changes do.
 */
import { INSPECTOR_LIMITS, type InspectorSnapshot } from '../inspector-api'
import { safeCall } from './callbacks'
import type { EngineInspector } from './inspector'
import type { StatusBoard } from './status-board'

/** Least time between two pushes of one feed (ms). */
export const FEED_INTERVAL_MS = 200
/** A last push this long after the newest change (ms). */
export const SETTLE_MS = 1_000

/** Pushes snapshots to `subscribeInspector` callbacks; see the module comment. */
export class InspectorFeed {
  readonly #inspector: EngineInspector
  readonly #now: () => number
  readonly #status: StatusBoard
  readonly #nextId: () => number
  readonly #subs = new Map<number, (snapshot: InspectorSnapshot) => void>()
  #timer: ReturnType<typeof setTimeout> | undefined
  #settle: ReturnType<typeof setTimeout> | undefined
  #lastPush = 0
  /** The status subscription that drives the feed while it has subscribers. */
  #statusSub: number | undefined

  /** `nextId` hands out subscription ids from the engine's one id space. */
  constructor(inspector: EngineInspector, now: () => number, status: StatusBoard, nextId: () => number) {
    this.#inspector = inspector
    this.#now = now
    this.#status = status
    this.#nextId = nextId
  }

  /** Whether anyone listens (the engine skips change reports otherwise). */
  get active(): boolean {
    return this.#subs.size > 0
  }

  /** Adds a subscriber and answers its id; it gets a snapshot at once. Past the limit, the oldest subscriber is dropped. */
  subscribe(onSnapshot: (snapshot: InspectorSnapshot) => void): number {
    const id = this.#nextId()
    if (this.#statusSub === undefined) {
      this.#statusSub = this.#nextId()
      this.#status.subscribe(this.#statusSub, () => this.changed())
    }
    if (this.#subs.size >= INSPECTOR_LIMITS.subscribers) this.#subs.delete(this.#subs.keys().next().value as number)
    this.#subs.set(id, onSnapshot)
    void this.#inspector.snapshot().then((snapshot) => {
      if (this.#subs.get(id) === onSnapshot) safeCall(onSnapshot, snapshot)
    }, onSnapshotError)
    return id
  }

  unsubscribe(id: number): void {
    this.#subs.delete(id)
    if (this.#subs.size > 0) return
    this.clear()
    if (this.#statusSub !== undefined) {
      this.#status.unsubscribe(this.#statusSub)
      this.#statusSub = undefined
    }
  }

  /** Something changed: push soon (throttled), and once more when things settle. */
  changed(): void {
    if (this.#subs.size === 0) return
    clearTimeout(this.#settle)
    this.#settle = setTimeout(() => this.#push(), SETTLE_MS)
    if (this.#timer !== undefined) return
    const wait = Math.min(FEED_INTERVAL_MS, Math.max(0, this.#lastPush + FEED_INTERVAL_MS - this.#now()))
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      this.#push()
    }, wait)
  }

  #push(): void {
    if (this.#subs.size === 0) return
    this.#lastPush = this.#now()
    void this.#inspector.snapshot().then((snapshot) => {
      for (const fn of this.#subs.values()) safeCall(fn, snapshot)
    }, onSnapshotError)
  }

  /** Drops every subscriber and timer (the engine is closing, or nobody listens). */
  clear(): void {
    this.#subs.clear()
    clearTimeout(this.#timer)
    clearTimeout(this.#settle)
    this.#timer = undefined
    this.#settle = undefined
  }
}

/** A snapshot failed (the store closed under it): the next change pushes again. */
function onSnapshotError(error: unknown): void {
  if (typeof console !== 'undefined') console.warn('[outpost] an inspector snapshot failed', error)
}
