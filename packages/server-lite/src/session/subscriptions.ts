/**
 * One session's subscriptions: how a shape is brought up to date, then kept live.
 *
 * On `subscribe`, the subscription joins its view first (so live fan-out reaches it), then
 * takes one of three paths, said in `subscribed.resume`:
 *   - `cursor`: the client's cursor is still inside the map's change log and was issued
 *     for this very view (same store, shape and bound rule filter): the keys changed since
 *     are replayed — records that are members, move-outs for those that left or that the
 *     caller may no longer see;
 *   - `merkle`: the client holds data but no usable cursor: it descends from the roots
 *     (`reconcile` / `entries`, answered with core's `sync/reconcile.ts`). A client that sent
 *     a cursor and no root (`welcome.cursorWithoutRoot`) is told `merkle` and nothing else: it
 *     subscribes again with its root;
 *   - `slice`: the client holds nothing: the whole view streams from the store in
 *     `(leaf path, key)` order.
 * Replays and slices are paced (socket send buffer, and the client's credit when it asked
 * for flow control) and run outside the session's frame chain, so they neither block its
 * other frames nor fill memory. Each path ends with `synced { cursor }`: the head sequence
 * number when the subscription joined, so every later change reaches the client live.
 *
 * Every `changes` frame of a subscription carries its number (`frame`: slice, replay,
 * answers and live fan-out alike) and every `synced` the count sent before it, so a client
 * notices a frame lost inside an open connection and catches up (worker `shape-sync.ts`).
 *
 * Files: this one (subscribe, cursors, framing, live fan-out), `paced-streams.ts` (slice
 * and cursor replay, flow control), `merkle-answers.ts` (the Merkle descent's answers),
 * `subscription.ts` (the types they share).
 */
import {
  DEFAULT_CODEC_LIMITS,
  EMPTY_DIGEST,
  ForbiddenError,
  QueryError,
  RateLimitError,
  ValueTooLargeError,
  andPredicates,
  encodeSharedChanges,
  hash64,
  itemBudget,
  keySize,
  measure,
  measureTotal,
  packListBySize,
  serializeError,
  shapeKey,
  stampChanges,
  validateShape,
  type Change,
  type CollectionKind,
  type EntriesMessage,
  type FrameSize,
  type NumberedChangesMessage,
  type ReconcileMessage,
  type ReconcileTree,
  type SubscribeMessage,
  type WireLimits,
} from '@outpost/core'
import type { SharedDelivery } from '../sync/fan-out'
import { ShapeView } from '../sync/shape-view'
import { MerkleAnswers } from './merkle-answers'
import { PacedStreams } from './paced-streams'
import { FRAME_RECORDS, type OutRecord, type Subscription, type SubscriptionHost, type SubscriptionOut } from './subscription'

export type { SubscriptionHost } from './subscription'


/** One frame's worth of records and move-outs. */
interface Batch {
  readonly changes: Change[]
  readonly moveOut: string[]
}

/** A cursor the relay issued: its store, the view it is valid for, and the sequence number. */
interface Cursor {
  readonly store: string
  readonly view: string
  readonly seq: number
}

function parseCursor(text: string | undefined): Cursor | undefined {
  if (text === undefined) return undefined
  const match = /^([0-9a-z]{1,40})\.([0-9a-f]{16})\.(\d{1,15})$/.exec(text)
  if (match === null) return undefined
  return { store: match[1] as string, view: match[2] as string, seq: Number(match[3]) }
}

/** One session's subscriptions; see the module comment. */
export class Subscriptions {
  readonly #host: SubscriptionHost
  readonly #subs = new Map<number, Subscription>()
  readonly #streams: PacedStreams
  readonly #merkle: MerkleAnswers

  constructor(host: SubscriptionHost) {
    this.#host = host
    const limits = (): WireLimits => this.#limits
    const out: SubscriptionOut = {
      host,
      get limits() {
        return limits()
      },
      frames: (sub, records, moveOut) => this.#frames(sub, records, moveOut),
      sendChanges: (sub, records, moveOut) => this.#sendChanges(sub, records, moveOut),
      synced: (sub, head) => this.#synced(sub, head),
      tree: (sub) => this.#tree(sub),
    }
    this.#streams = new PacedStreams(out)
    this.#merkle = new MerkleAnswers(out, () => this.#limits, (id) => this.#subs.get(id))
  }

  /** How many subscriptions are open. */
  get size(): number {
    return this.#subs.size
  }

  /** The client's flow-control window from hello. */
  setWindow(window: number | undefined): void {
    this.#streams.setWindow(window)
  }

  /** The client paid back `bytes` of paced frames. */
  credit(bytes: number): void {
    this.#streams.credit(bytes)
  }

  /** Ends every subscription (the session closed). */
  closeAll(): void {
    this.#streams.close()
    for (const sub of [...this.#subs.values()]) this.#drop(sub)
    this.#subs.clear()
  }

  /** Handles `reconcile` (see `merkle-answers.ts`). */
  reconcile(message: ReconcileMessage): Promise<void> {
    return this.#merkle.reconcile(message)
  }

  /** Handles `entries` (see `merkle-answers.ts`). */
  entries(message: EntriesMessage): Promise<void> {
    return this.#merkle.entries(message)
  }

  get #limits(): WireLimits {
    return { maxFrameBytes: this.#host.context.config.limits.maxFrameBytes, maxElements: DEFAULT_CODEC_LIMITS.maxElements }
  }

  // ───────────────────────────── subscribe / unsubscribe ─────────────────────────────

  /** Handles `subscribe`; see the module comment. */
  async subscribe(message: SubscribeMessage): Promise<void> {
    const context = this.#host.context
    const subError = (error: unknown): void => this.#host.send({ type: 'error', sub: message.sub, error: serializeError(error) })
    const existing = this.#subs.get(message.sub)
    if (existing !== undefined) this.#drop(existing)
    if (this.#subs.size >= context.config.limits.maxSubscriptionsPerConnection) {
      subError(new RateLimitError(`At most ${context.config.limits.maxSubscriptionsPerConnection} subscriptions per connection`))
      return
    }
    let shape
    try {
      shape = validateShape(message.shape)
    } catch (error) {
      subError(error)
      return
    }
    const access = this.#host.access(shape.map)
    if (!access.read) {
      subError(new ForbiddenError(`You may not read map ${shape.map}`, { map: shape.map }))
      return
    }
    const state = await context.sync.catalog.get(shape.map)
    if (!this.#host.isOpen) return
    if (state.kind !== undefined && state.kind !== 'lww') {
      if (shape.where !== undefined || shape.fields !== undefined || shape.orderBy !== undefined || shape.limit !== undefined) {
        subError(new QueryError(`Map ${shape.map} holds ${state.kind} data; subscribe to it as { map } without where/fields/orderBy/limit`))
        return
      }
      if (access.filter !== undefined) {
        subError(new ForbiddenError(`Map ${shape.map} has a row filter, which only LWW maps support; it is not readable`))
        return
      }
    }
    // Subscribers share a view when both the shape and the bound rule filter agree.
    const where = andPredicates(shape.where, access.filter)
    const id = shapeKey({ ...shape, ...(where === undefined ? {} : { where }) })
    let view = state.views.get(id)
    if (view === undefined) {
      view = new ShapeView(id, shape, access.filter, () => state.kind ?? 'lww')
      state.views.set(id, view)
    }
    const owner = this.#host.owner
    const host = this.#host
    const subscription: Subscription = {
      sub: message.sub,
      view,
      map: shape.map,
      access,
      state,
      head: state.head,
      frames: 0,
      closed: false,
      owner,
      deliver: (changes, moveOut, seq, shared) => {
        if (subscription.closed) return
        // seq 0: only echoes to a writer whose write lost, which move no cursor.
        const extra = seq > 0 ? { seq } : {}
        if (shared === undefined) this.#sendChanges(subscription, changes, moveOut, extra)
        else this.#sendShared(subscription, shared, changes, moveOut, extra)
      },
    }
    // Joined before anything is read: every change committed from now on reaches it live.
    view.subscribers.add(subscription)
    this.#subs.set(message.sub, subscription)
    const head = subscription.head
    const source = context.sync.scanAll(shape.map)
    if (view.windowed) await view.build(source, false)
    if (subscription.closed || !host.isOpen) return

    const cursor = parseCursor(message.cursor)
    const viewFingerprint = hash64(view.id)
    const storeId = await this.#storeId()
    if (cursor !== undefined && cursor.store === storeId && cursor.view === viewFingerprint && !view.windowed && cursor.seq >= state.floor && cursor.seq <= head) {
      host.send({ type: 'subscribed', sub: message.sub, root: { path: '', hash: EMPTY_DIGEST, count: 0 }, resume: 'cursor' })
      void this.#streams.replay(subscription, cursor.seq, head).catch((error: unknown) => this.#failStream(subscription, error))
      return
    }
    // A cursor without a root (see `cursorWithoutRoot`): the client holds data but sent no
    // root to save building its tree. It subscribes again with one; nothing is sent here.
    if (message.cursor !== undefined && message.root === undefined) {
      host.send({ type: 'subscribed', sub: message.sub, root: { path: '', hash: EMPTY_DIGEST, count: 0 }, resume: 'merkle' })
      return
    }
    if (message.root !== undefined && message.root.count > 0) {
      const tree = await this.#tree(subscription)
      if (subscription.closed || !host.isOpen) return
      const root = tree.node('')
      const current = root.hash === message.root.hash
      host.send({ type: 'subscribed', sub: message.sub, root, resume: current ? 'current' : 'merkle' })
      if (current) await this.#synced(subscription, head)
      return
    }
    host.send({ type: 'subscribed', sub: message.sub, root: { path: '', hash: EMPTY_DIGEST, count: 0 }, resume: 'slice' })
    void this.#streams.slice(subscription, head).catch((error: unknown) => this.#failStream(subscription, error))
  }

  /** Handles `unsubscribe`. */
  unsubscribe(sub: number): void {
    const found = this.#subs.get(sub)
    if (found !== undefined) this.#drop(found)
  }

  #drop(sub: Subscription): void {
    sub.closed = true
    if (this.#subs.get(sub.sub) === sub) this.#subs.delete(sub.sub)
    sub.view.subscribers.delete(sub)
    sub.state.release()
  }

  /** The relay's store identity, part of every cursor: a cursor from another store (or a wiped one) is not trusted. */
  #storeId(): Promise<string> {
    return this.#host.context.sync.storeId()
  }

  #cursor(sub: Subscription, seq: number, storeId: string): string {
    return `${storeId}.${hash64(sub.view.id)}.${seq}`
  }

  async #synced(sub: Subscription, head: number): Promise<void> {
    const cursor = this.#cursor(sub, head, await this.#storeId())
    if (sub.closed) return
    // The root when it is at hand (a Merkle path loaded it); loading it only to report it cost a
    // reconnect by cursor most of its time, and no client decides anything on it.
    const root = (sub.view.plain ? sub.state.loadedTree : sub.view.tree)?.node('') ?? { path: '', hash: EMPTY_DIGEST, count: 0 }
    // A windowed view (orderBy + limit) never resumes by cursor: none is given, so the client sends its root at once.
    this.#host.send({ type: 'synced', sub: sub.sub, root, serverTime: this.#host.context.now(), ...(sub.view.windowed ? {} : { cursor }), frames: sub.frames })
  }

  #failStream(sub: Subscription, error: unknown): void {
    if (sub.closed || !this.#host.isOpen) return
    this.#host.context.logger.error({ err: error, map: sub.map }, 'streaming a subscription failed')
    this.#host.send({ type: 'error', sub: sub.sub, error: serializeError(error) })
    this.#drop(sub)
  }

  // ───────────────────────────── framing ─────────────────────────────

  /** Cuts records then move-outs into frames (one frame when they fit); a record too large for any frame is reported instead (`oversize`). */
  *#frames(sub: Subscription, records: readonly OutRecord[], moveOut: readonly string[], oversize: (change: Change, bytes: number) => void = (change, bytes) => this.#oversize(sub, change, bytes)): Generator<Batch> {
    const kind: CollectionKind = sub.view.kind
    type Item = { change: Change } | { moveOut: string }
    const items: Item[] = records.map(({ key, state }) => ({ change: { kind, map: sub.map, key, state } as Change }))
    for (const key of moveOut) items.push({ moveOut: key })
    const sizeOf = (item: Item): FrameSize => ('change' in item ? measure(item.change) : keySize(item.moveOut))
    const tooLarge = (item: Item, size: FrameSize): void => {
      if ('change' in item) oversize(item.change, size.bytes)
    }
    // A page of small records is measured once as a whole (one encoding) and cut only when it does not fit one frame.
    const sizeOfAll = (all: readonly Item[]): FrameSize => {
      const total = measureTotal(all.flatMap((item) => ('change' in item ? [item.change] : [])))
      let bytes = total.bytes
      for (const item of all) if ('moveOut' in item) bytes += keySize(item.moveOut).bytes
      return { bytes, elements: total.elements }
    }
    for (const batch of packListBySize(items, sizeOf, sizeOfAll, itemBudget(this.#limits), FRAME_RECORDS, tooLarge)) {
      yield { changes: batch.flatMap((item) => ('change' in item ? [item.change] : [])), moveOut: batch.flatMap((item) => ('moveOut' in item ? [item.moveOut] : [])) }
    }
  }

  /** The `changes` message of one frame (one key order for both send paths, so their bytes agree). */
  #message(sub: Subscription, batch: Batch, extra: { seq?: number }, frame: number): NumberedChangesMessage {
    return { type: 'changes', sub: sub.sub, changes: batch.changes, ...(batch.moveOut.length > 0 ? { moveOut: batch.moveOut } : {}), ...(extra.seq === undefined ? {} : { seq: extra.seq }), frame }
  }

  /** Sends records and move-outs now (live fan-out and reconciliation answers), with the sequence number they cover. */
  #sendChanges(sub: Subscription, records: readonly OutRecord[], moveOut: readonly string[], extra: { seq?: number } = {}): void {
    for (const batch of this.#frames(sub, records, moveOut)) {
      this.#host.context.metrics.opsOut.inc(batch.changes.length)
      this.#host.send(this.#message(sub, batch, extra, ++sub.frames))
    }
  }

  /**
   * {@link #sendChanges} for a live delivery other subscriptions of the view receive too:
   * the frames are cut once and encoded once per wire version for all of them (see
   * `fan-out.ts`); each subscription's frames differ only in `sub` and `frame`, written
   * into a copy of the shared bytes (core `shared-frame.ts`: the same bytes as its own encoding).
   */
  #sendShared(sub: Subscription, shared: SharedDelivery, records: readonly OutRecord[], moveOut: readonly string[], extra: { seq?: number }): void {
    const framing = shared.once('frames', () => {
      const oversize: { change: Change; bytes: number }[] = []
      const batches = [...this.#frames(sub, records, moveOut, (change, bytes) => oversize.push({ change, bytes }))]
      return { batches, oversize }
    })
    for (const { change, bytes } of framing.oversize) this.#oversize(sub, change, bytes)
    const version = this.#host.version
    const encoded = shared.once(`v${version}`, () =>
      framing.batches.map((batch) => {
        try {
          return encodeSharedChanges(this.#message(sub, batch, extra, 1), version)
        } catch (error) {
          this.#host.context.logger.error({ err: error, type: 'changes' }, 'cannot encode a server message')
          return undefined
        }
      }),
    )
    framing.batches.forEach((batch, i) => {
      this.#host.context.metrics.opsOut.inc(batch.changes.length)
      const frame = ++sub.frames
      const once = encoded[i]
      if (once !== undefined) this.#host.sendEncoded(stampChanges(once, sub.sub, frame))
    })
  }

  /** A stored record too large for any frame (stored before limits were checked): it cannot be sent; say so instead of looping. */
  #oversize(sub: Subscription, change: Change, bytes: number): void {
    const limits = this.#limits
    this.#host.context.logger.warn({ map: change.map, key: change.key.slice(0, 128), bytes, maxFrameBytes: limits.maxFrameBytes }, 'a stored record is too large to send to a subscriber; it is skipped')
    const error = new ValueTooLargeError(`Record ${change.map}/${change.key.slice(0, 64)} is ${bytes} bytes, too large for the relay's frame limit of ${limits.maxFrameBytes} bytes; it was not sent. Make it smaller from a client with a larger limit, or raise limits.maxFrameBytes`, { map: change.map, key: change.key.slice(0, 256), bytes, maxFrameBytes: limits.maxFrameBytes })
    this.#host.send({ type: 'error', sub: sub.sub, error: serializeError(error) })
  }

  // ───────────────────────────── Merkle ─────────────────────────────

  /** The view's Merkle tree: the map's stored leaf sums for the plain view, else the view's member tree (built on first need). */
  async #tree(sub: Subscription): Promise<ReconcileTree> {
    if (sub.view.plain) return sub.state.tree(this.#host.context.sync.store)
    await sub.view.build(this.#host.context.sync.scanAll(sub.map), true)
    return sub.view.tree as ReconcileTree
  }
}
