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
 *     (`reconcile` / `entries`, answered with core's `sync/reconcile.ts`);
 *   - `slice`: the client holds nothing: the whole view streams from the store in
 *     `(leaf path, key)` order.
 * Replays and slices are paced (socket send buffer, and the client's credit when it asked
 * for flow control) and run outside the session's frame chain, so they neither block its
 * other frames nor fill memory. Each path ends with `synced { cursor }`: the head sequence
 * number when the subscription joined, so every later change reaches the client live.
 */
import {
  DEFAULT_CODEC_LIMITS,
  EMPTY_DIGEST,
  ForbiddenError,
  InvalidMessageError,
  QueryError,
  RateLimitError,
  ValueTooLargeError,
  andPredicates,
  answerReconcile,
  compareEntries,
  hash64,
  itemBudget,
  keySize,
  leafPathOf,
  lwwMaxStamp,
  measure,
  packBySize,
  serializeError,
  shapeKey,
  validateShape,
  MESSAGE_LIMITS,
  type Change,
  type CollectionKind,
  type CrdtState,
  type EntriesMessage,
  type FrameSize,
  type LwwRecordState,
  type MerkleNodeInfo,
  type ReconcileEntry,
  type ReconcileMessage,
  type ReconcileTree,
  type RecordValue,
  type ServerMessage,
  type Stamp,
  type SubscribeMessage,
  type SyncRecord,
  type WireLimits,
} from '@outpost/core'
import type { MapAccess } from '../auth/rules'
import type { RelayContext } from '../relay-context'
import type { MapState } from '../sync/map-catalog'
import { ShapeView } from '../sync/shape-view'
import type { Subscriber } from '../sync/sync-service'

/** Most records in one `changes` frame; frames are cut by exact bytes first (`packBySize`). */
const FRAME_RECORDS = 2_000
/** Log entries read per page of a replay. */
const REPLAY_PAGE = 2_000
/** Records read per page of a slice or an entries answer. */
const SCAN_PAGE = 2_000
/** A paced stream waits while the socket's send buffer holds more than this. */
const SEND_LOW_WATER = 1024 * 1024
/** How often (ms) a paced stream re-checks a full send buffer. */
const DRAIN_POLL_MS = 5

/** What the subscriptions need from their session. */
export interface SubscriptionHost {
  readonly context: RelayContext
  /** The session (fan-out compares owners by identity). */
  readonly owner: object
  readonly isOpen: boolean
  /** Sends a message (dropped once the session closed). */
  send(message: ServerMessage): void
  /** Sends a message; returns its frame's length (0 when nothing was sent). */
  sendMeasured(message: ServerMessage): number
  /** Bytes waiting in the transport's send buffer. */
  bufferedBytes(): number
  /** What the caller may do on `map`. */
  access(map: string): MapAccess
}

interface Subscription extends Subscriber {
  readonly access: MapAccess
  readonly state: MapState
  /** The map's head sequence number when the subscription joined its view: what its cursors cover. */
  readonly head: number
  /** `changes` frames sent for this subscription so far: each carries its number (`frame`), each `synced` the count. */
  frames: number
  closed: boolean
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
  /** Flow control (hello `window`): paced bytes the client may hold unprocessed; undefined = socket pacing only. */
  #window: number | undefined
  /** Paced bytes sent and not yet paid back by `credit`. */
  #owed = 0
  /** Paced streams waiting for credit or for the session to end. */
  #creditWaiters: (() => void)[] = []
  /** `entries` lists of one path arriving in several frames (`more`), by `sub \0 path`. */
  readonly #partialEntries = new Map<string, EntriesMessage['entries'][number][]>()

  constructor(host: SubscriptionHost) {
    this.#host = host
  }

  /** How many subscriptions are open. */
  get size(): number {
    return this.#subs.size
  }

  /** The client's flow-control window from hello. */
  setWindow(window: number | undefined): void {
    this.#window = window
  }

  /** The client paid back `bytes` of paced frames. */
  credit(bytes: number): void {
    this.#owed = Math.max(0, this.#owed - bytes)
    for (const wake of this.#creditWaiters.splice(0)) wake()
  }

  /** Ends every subscription (the session closed). */
  closeAll(): void {
    for (const wake of this.#creditWaiters.splice(0)) wake()
    for (const sub of [...this.#subs.values()]) this.#drop(sub)
    this.#subs.clear()
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
      deliver: (changes, moveOut, seq) => {
        if (subscription.closed) return
        // seq 0: only echoes to a writer whose write lost, which move no cursor.
        this.#sendChanges(subscription, changes, moveOut, seq > 0 ? { seq } : {})
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
      void this.#replay(subscription, cursor.seq, head).catch((error: unknown) => this.#failStream(subscription, error))
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
    void this.#streamSlice(subscription, head).catch((error: unknown) => this.#failStream(subscription, error))
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
    const root = sub.view.plain ? (await sub.state.tree(this.#host.context.sync.store)).node('') : (sub.view.tree?.node('') ?? { path: '', hash: EMPTY_DIGEST, count: 0 })
    this.#host.send({ type: 'synced', sub: sub.sub, root, serverTime: this.#host.context.now(), cursor, frames: sub.frames })
  }

  #failStream(sub: Subscription, error: unknown): void {
    if (sub.closed || !this.#host.isOpen) return
    this.#host.context.logger.error({ err: error, map: sub.map }, 'streaming a subscription failed')
    this.#host.send({ type: 'error', sub: sub.sub, error: serializeError(error) })
    this.#drop(sub)
  }

  // ───────────────────────────── paced streams ─────────────────────────────

  /** Streams the whole view from the store, then `synced`. */
  async #streamSlice(sub: Subscription, head: number): Promise<void> {
    const store = this.#host.context.sync.store
    let after: string | undefined
    for (;;) {
      const page = await store.scanRecords(sub.map, after === undefined ? { limit: SCAN_PAGE } : { after, limit: SCAN_PAGE })
      if (sub.closed) return
      const members = page.filter((record) => sub.view.isMember(record.key, record.state)).map((record) => ({ key: record.key, state: sub.view.project(record.state) }))
      await this.#sendPaced(sub, members, [])
      if (sub.closed || page.length < SCAN_PAGE) break
      after = (page[page.length - 1] as SyncRecord).key
    }
    if (!sub.closed) await this.#synced(sub, head)
  }

  /** Replays the keys changed after `cursor` (up to `head`), then `synced`. */
  async #replay(sub: Subscription, cursor: number, head: number): Promise<void> {
    const store = this.#host.context.sync.store
    let after = cursor
    while (after < head) {
      const entries = (await store.readLog(sub.map, after, REPLAY_PAGE)).filter((entry) => entry.seq <= head)
      if (sub.closed || entries.length === 0) break
      // The first entry of a key in this page holds what the record was before the changes it missed.
      const first = new Map<string, RecordValue | undefined>()
      for (const entry of entries) if (!first.has(entry.key)) first.set(entry.key, entry.before as RecordValue | undefined)
      const keys = [...first.keys()]
      const records = await store.getRecords(sub.map, keys)
      if (sub.closed) return
      const members: { key: string; state: CrdtState }[] = []
      const moveOut: string[] = []
      keys.forEach((key, i) => {
        const record = records[i]
        if (record !== undefined && sub.view.isMember(key, record.state)) {
          members.push({ key, state: sub.view.project(record.state) })
          return
        }
        // Not a member now: tell the client to drop it when the caller may know of it, now or before this change.
        const before = first.get(key)
        const visibleNow = record !== undefined && sub.view.visibleNonMember(key, record.state, sub.access.visible)
        const visibleBefore = before !== undefined && sub.access.visible(before)
        if (visibleNow || visibleBefore || (sub.access.filter === undefined && record !== undefined)) moveOut.push(key)
      })
      await this.#sendPaced(sub, members, moveOut)
      after = (entries[entries.length - 1] as { seq: number }).seq
      if (entries.length < REPLAY_PAGE) break
    }
    if (!sub.closed) await this.#synced(sub, head)
  }

  /** Sends records and move-outs as paced frames (credit and send buffer), cut by exact bytes. */
  async #sendPaced(sub: Subscription, records: readonly { key: string; state: CrdtState }[], moveOut: readonly string[]): Promise<void> {
    for (const batch of this.#frames(sub, records, moveOut)) {
      await this.#paced()
      if (sub.closed || !this.#host.isOpen) return
      this.#host.context.metrics.opsOut.inc(batch.changes.length)
      this.#owed += this.#host.sendMeasured({ type: 'changes', sub: sub.sub, changes: batch.changes, ...(batch.moveOut.length > 0 ? { moveOut: batch.moveOut } : {}), paced: true, frame: ++sub.frames })
    }
  }

  /** Resolves when a paced frame may go: the send buffer has room and the client has credit (when it asked for flow control). */
  async #paced(): Promise<void> {
    while (this.#host.isOpen) {
      if (this.#window !== undefined && this.#owed >= this.#window) {
        await new Promise<void>((resolve) => this.#creditWaiters.push(resolve))
        continue
      }
      if (this.#host.bufferedBytes() <= SEND_LOW_WATER) return
      await new Promise<void>((resolve) => setTimeout(resolve, DRAIN_POLL_MS))
    }
  }

  /** Cuts records then move-outs into frames (one frame when they fit); a record too large for any frame is reported instead. */
  *#frames(sub: Subscription, records: readonly { key: string; state: CrdtState }[], moveOut: readonly string[]): Generator<{ changes: Change[]; moveOut: string[] }> {
    const kind: CollectionKind = sub.view.kind
    type Item = { change: Change } | { moveOut: string }
    const items: Item[] = records.map(({ key, state }) => ({ change: { kind, map: sub.map, key, state } as Change }))
    for (const key of moveOut) items.push({ moveOut: key })
    const sizeOf = (item: Item): FrameSize => ('change' in item ? measure(item.change) : keySize(item.moveOut))
    const oversize = (item: Item, size: FrameSize): void => {
      if ('change' in item) this.#oversize(sub, item.change, size.bytes)
    }
    for (const batch of packBySize(items, sizeOf, itemBudget(this.#limits), FRAME_RECORDS, oversize)) {
      yield { changes: batch.flatMap((item) => ('change' in item ? [item.change] : [])), moveOut: batch.flatMap((item) => ('moveOut' in item ? [item.moveOut] : [])) }
    }
  }

  /** Sends records and move-outs now (live fan-out and reconciliation answers), with the sequence number they cover. */
  #sendChanges(sub: Subscription, records: readonly { key: string; state: CrdtState }[], moveOut: readonly string[], extra: { seq?: number } = {}): void {
    for (const batch of this.#frames(sub, records, moveOut)) {
      this.#host.context.metrics.opsOut.inc(batch.changes.length)
      this.#host.send({ type: 'changes', sub: sub.sub, changes: batch.changes, ...(batch.moveOut.length > 0 ? { moveOut: batch.moveOut } : {}), ...(extra.seq === undefined ? {} : { seq: extra.seq }), frame: ++sub.frames })
    }
  }

  /** A stored record too large for any frame (stored before limits were checked): it cannot be sent; say so instead of looping. */
  #oversize(sub: Subscription, change: Change, bytes: number): void {
    const limits = this.#limits
    this.#host.context.logger.warn({ map: change.map, key: change.key.slice(0, 128), bytes, maxFrameBytes: limits.maxFrameBytes }, 'a stored record is too large to send to a subscriber; it is skipped')
    const error = new ValueTooLargeError(`Record ${change.map}/${change.key.slice(0, 64)} is ${bytes} bytes, too large for the relay's frame limit of ${limits.maxFrameBytes} bytes; it was not sent. Make it smaller from a client with a larger limit, or raise limits.maxFrameBytes`, { map: change.map, key: change.key.slice(0, 256), bytes, maxFrameBytes: limits.maxFrameBytes })
    this.#host.send({ type: 'error', sub: sub.sub, error: serializeError(error) })
  }

  // ───────────────────────────── Merkle reconciliation ─────────────────────────────

  #subscription(id: number): Subscription | undefined {
    const sub = this.#subs.get(id)
    if (sub === undefined) this.#host.send({ type: 'error', sub: id, error: serializeError(new QueryError(`No subscription ${id}; subscribe first`)) })
    return sub
  }

  /** The view's Merkle tree: the map's stored leaf sums for the plain view, else the view's member tree (built on first need). */
  async #tree(sub: Subscription): Promise<ReconcileTree> {
    if (sub.view.plain) return sub.state.tree(this.#host.context.sync.store)
    await sub.view.build(this.#host.context.sync.scanAll(sub.map), true)
    return sub.view.tree as ReconcileTree
  }

  /** Answers the client's differing nodes with the relay's non-empty children of each, in frames that fit (`more` on all but the last). */
  async reconcile(message: ReconcileMessage): Promise<void> {
    const sub = this.#subscription(message.sub)
    if (sub === undefined) return
    this.#host.context.metrics.reconcileRounds.inc()
    const nodes = answerReconcile(await this.#tree(sub), message.nodes)
    const batches = [...packBySize(nodes, nodeSize, itemBudget(this.#limits), MESSAGE_LIMITS.maxNodesPerFrame * 16)]
    if (batches.length === 0) batches.push([])
    batches.forEach((batch, i) => this.#host.send({ type: 'nodes', sub: message.sub, nodes: batch, ...(i < batches.length - 1 ? { more: true as const } : {}) }))
  }

  /** Settles a small differing subtree: records the client lacks, keys it should upload or drop, then `synced`. */
  async entries(message: EntriesMessage): Promise<void> {
    const sub = this.#subscription(message.sub)
    if (sub === undefined) return
    const path = /^[0-9a-f]*$/.test(message.path) ? message.path : '\u0000'
    const tree = await this.#tree(sub)
    // Only keys that really belong under `path` count: a client cannot probe other buckets through it.
    const part = message.entries.filter(([key]) => leafPathOf(key, tree.depth).startsWith(path))
    const partialKey = `${message.sub}\u0000${path}`
    const gathered = this.#partialEntries.get(partialKey)
    const remote = gathered === undefined ? part : [...gathered, ...part]
    if (message.more === true) {
      // A list cut into several frames: answer once its last frame is in (bounded like one frame's list).
      if (remote.length > MESSAGE_LIMITS.maxKeysPerFrame) {
        this.#partialEntries.delete(partialKey)
        this.#host.send({ type: 'error', sub: message.sub, error: serializeError(new InvalidMessageError(`An entries list of more than ${MESSAGE_LIMITS.maxKeysPerFrame} keys for one path; reconcile deeper paths instead`)) })
        return
      }
      this.#partialEntries.set(partialKey, remote)
      return
    }
    this.#partialEntries.delete(partialKey)
    this.#host.context.metrics.reconcileRounds.inc()
    const store = this.#host.context.sync.store
    const local = await this.#memberRecords(sub, path)
    if (sub.closed) return
    const localEntries: ReconcileEntry[] = [...local.values()].map((r) => [r.key, sub.view.digest(r.state), newestStamp(sub.view.kind, r.state)])
    const remoteEntries: ReconcileEntry[] = remote.map((e) => [e[0], e[1], (e[2] ?? null) as Stamp | null])
    const answer = compareEntries(localEntries, remoteEntries)
    const send = answer.send.flatMap((key) => {
      const record = local.get(key)
      return record === undefined ? [] : [{ key, state: sub.view.project(record.state) }]
    })
    const push = [...answer.ask]
    const moveOut: string[] = []
    if (answer.stray.length > 0) {
      const held = await store.getRecords(sub.map, answer.stray)
      answer.stray.forEach((key, i) => {
        // The relay holds it but this caller's view does not (it left the shape, or the caller
        // may no longer see it), or the caller may not write it: drop it from the device.
        if (held[i] !== undefined || !sub.access.keyAllowed(key)) moveOut.push(key)
        // The relay has never heard of it: the device may upload its own writes.
        else push.push(key)
      })
    }
    if (sub.closed) return
    this.#sendChanges(sub, send, moveOut)
    for (const keys of packBySize(push, keySize, itemBudget(this.#limits), MESSAGE_LIMITS.maxKeysPerFrame)) this.#host.send({ type: 'push', sub: message.sub, keys })
    const root = (await this.#tree(sub)).node('')
    // Each answer carries the subscription's cursor: once the client's descent has no answer
    // outstanding it holds every change up to the join (later ones arrive live), so the
    // Merkle path ends with a cursor like the others.
    const cursor = this.#cursor(sub, sub.head, await this.#storeId())
    if (sub.closed) return
    this.#host.send({ type: 'synced', sub: sub.sub, root, serverTime: this.#host.context.now(), cursor, frames: sub.frames })
  }

  /** The view's members under a Merkle path, with their stored records. */
  async #memberRecords(sub: Subscription, path: string): Promise<Map<string, SyncRecord>> {
    const store = this.#host.context.sync.store
    const out = new Map<string, SyncRecord>()
    if (sub.view.plain) {
      let after: string | undefined
      for (;;) {
        const page = await store.scanRecords(sub.map, { within: path, limit: SCAN_PAGE, ...(after === undefined ? {} : { after }) })
        for (const record of page) out.set(record.key, record)
        if (page.length < SCAN_PAGE) return out
        after = (page[page.length - 1] as SyncRecord).key
      }
    }
    const keys = (sub.view.tree?.entries(path) ?? []).map(([key]) => key)
    const records = await store.getRecords(sub.map, keys)
    records.forEach((record, i) => {
      if (record !== undefined && sub.view.isMember(keys[i] as string, record.state)) out.set(record.key, record)
    })
    return out
  }
}

/** The newest stamp of a state (LWW registers and tombstone, OR tags), or null. */
function newestStamp(kind: CollectionKind, state: CrdtState): Stamp | null {
  if (kind === 'lww') return lwwMaxStamp(state as LwwRecordState)
  if (kind === 'or') {
    let newest: Stamp | null = null
    for (const [tag] of (state as { adds: readonly (readonly [Stamp, unknown])[] }).adds) if (newest === null || tag > newest) newest = tag
    for (const tag of (state as { removes: readonly Stamp[] }).removes) if (newest === null || tag > newest) newest = tag
    return newest
  }
  return null
}

/** The encoded size of one Merkle node info in a `nodes` list. */
function nodeSize(node: MerkleNodeInfo): { bytes: number; elements: number } {
  // fixmap(3) + "path" + path string + "hash" + 16-char string + "count" + uint up to 5 bytes.
  return { bytes: 1 + 5 + 1 + node.path.length + 5 + 17 + 6 + 5, elements: 3 }
}
