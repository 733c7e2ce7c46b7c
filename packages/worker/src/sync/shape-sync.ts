/**
 * Brings each shape up to date on a session, then keeps it live.
 *
 * For each shape: `subscribe {root, cursor}` → the relay's `subscribed.resume` says how:
 * `cursor` (it replays changes and move-outs since the cursor, then `synced`: no
 * descent), `current` (nothing changed), `slice` (the whole shape streams) or `merkle`:
 * descend differing Merkle nodes (`reconcile` for big nodes, `entries` for small or leaf
 * ones), apply `changes` and `moveOut`, answer `push` with `ops`. Every `reconcile` is
 * answered by one `nodes` and every `entries` by one `synced`, so a shape is synced when
 * none is outstanding. At most {@link MAX_OUTSTANDING_PER_SHAPE} requests are in flight
 * per shape, so however large the divergence the relay's answers arrive as asked for.
 *
 * Cursors: the relay ends each sync path with `synced {cursor}`. Once a shape has no
 * answer outstanding, its newest cursor is kept durably (the engine flushes the shape data
 * first, so a stored cursor never covers data the store lacks) and sent with the next
 * `subscribe`. A cursor is dropped, durably and before the data, whenever the shape's data
 * is (`resync`, FORBIDDEN, unsubscribe), before a repair (which must descend), and when
 * the relay did not take it. A sync in which the relay asked for records (`push`) keeps
 * no cursor: those uploads are not in the outbox, so the next connection descends again
 * rather than trust a cursor that may not cover them. Cursors belong to the relay's store:
 * a relay over another (or a wiped) store refuses them and falls back on its own.
 */
import {
  diffChildren,
  itemBudget,
  keySize,
  needsEntryExchange,
  packBySize,
  serializeError,
  type Change,
  type ChangesMessage,
  type ClientMessage,
  type FrameSize,
  type MerkleNodeInfo,
  type PushMessage,
  type SerializedError,
  type SyncedMessage,
  type WireLimits,
} from '@outpost/core'
import type { ShapeReplica } from './shape-replica'

/** How the relay brings a subscription up to date (`subscribed.resume`). */
export type ResumeMode = 'cursor' | 'slice' | 'merkle' | 'current'

/** Nodes per `reconcile` frame: the relay's answer (16 children each, about 60 B per node) stays well under 1 MiB. */
const RECONCILE_NODES_PER_FRAME = 512
/** Reconciliation requests (reconcile, entries) in flight per shape; more wait for answers, so a large divergence never floods the relay's send buffer. */
const MAX_OUTSTANDING_PER_SHAPE = 16
/** Size of one `[key, digest]` pair in an `entries` list, beyond the key itself. */
const ENTRY_PAIR_SIZE: FrameSize = { bytes: 1 + 17, elements: 2 }

/** What shape sync needs from the engine. */
export interface ShapeHost {
  shapeReplicas(): ShapeReplica[]
  applyChanges(replica: ShapeReplica | undefined, changes: readonly Change[], moveOut: readonly string[]): Promise<void>
  resetShape(replica: ShapeReplica): Promise<void>
  recordsFor(replica: ShapeReplica, keys: readonly string[]): Change[]
  /** Writes of this replica in `change` only: what a `push` reply may carry (each replica uploads its own writes). */
  ownPart?(change: Change): Change | undefined
  synced(serverTime: number): void
  saveCursor?(replica: ShapeReplica, cursor: string | undefined): Promise<void>
  connectionChanged(error?: SerializedError): void
}

/** What shape sync needs from the session. */
export interface ShapeLink {
  /** True when a welcomed session is up (`syncing` or `live`). */
  readonly active: boolean
  readonly limits: WireLimits
  send(message: ClientMessage): void
  now(): number
  /** Sends records the relay asked for (`push`) as `ops`. */
  sendRecords(records: readonly Change[]): void
  /** A shape finished (or stopped counting): the session may now be synced. */
  progressed(): void
}

interface ShapeSession {
  readonly replica: ShapeReplica
  readonly sub: number
  subscribed: boolean
  /** Replies still expected: one `nodes` per `reconcile`, one `synced` per `entries` (or per subscribe the relay settles itself). */
  outstanding: number
  /** The paths of each `reconcile` sent, in order: a `nodes` reply answers the oldest. */
  readonly reconciles: string[][]
  /** Nodes of a `nodes` answer cut into several frames (`more`), gathered until its last frame. */
  partialNodes: MerkleNodeInfo[]
  /** Reconciliation requests waiting for room under {@link MAX_OUTSTANDING_PER_SHAPE}. */
  readonly queued: (() => void)[]
  synced: boolean
  /** The root sent with `subscribe` (none when the shape was empty locally). */
  readonly sentRoot: MerkleNodeInfo | undefined
  /** The newest cursor a `synced` of this subscription carried. */
  cursor: string | undefined
  /** The relay asked for records of this shape (`push`): this sync keeps no cursor. */
  pushed: boolean
  /** When a reply for this shape last arrived (or was first owed): the watchdog restarts a session stuck longer than the reply timeout. */
  progressAt: number
}

/** Every shape's subscription on the current session; see the module comment. */
export class ShapeSync {
  readonly #host: ShapeHost
  readonly #link: ShapeLink
  readonly #sessions = new Map<number, ShapeSession>()
  #nextSub = 1
  /** Subscriptions answered per resume mode. @internal */
  readonly resumes: Record<ResumeMode, number> = { cursor: 0, slice: 0, merkle: 0, current: 0 }

  constructor(host: ShapeHost, link: ShapeLink) {
    this.#host = host
    this.#link = link
  }

  /** A session is up: drop every shape's data first when the relay said `resync`, then subscribe them all. */
  async sessionUp(resync: boolean): Promise<void> {
    if (resync) for (const replica of this.#host.shapeReplicas()) await this.#host.resetShape(replica)
    for (const replica of this.#host.shapeReplicas()) this.#subscribe(replica)
  }

  /** The session ended: its subscriptions are gone with it. */
  sessionEnded(): void {
    this.#sessions.clear()
  }

  /** True when every subscription was answered and has no reconciliation answer outstanding. */
  get allSynced(): boolean {
    for (const s of this.#sessions.values()) if (!s.subscribed || !s.synced) return false
    return true
  }

  /** Where `replica` stands on this session (read by the inspector): its newest subscription's progress, or `none`. */
  progressOf(replica: ShapeReplica): 'none' | 'subscribing' | 'reconciling' | 'synced' {
    let found: ShapeSession | undefined
    for (const s of this.#sessions.values()) if (s.replica === replica) found = s
    return found === undefined ? 'none' : !found.subscribed ? 'subscribing' : found.synced ? 'synced' : 'reconciling'
  }

  /** True when a reply owed for some shape made no progress for `replyMs`. */
  stalled(now: number, replyMs: number): boolean {
    for (const session of this.#sessions.values()) if (session.outstanding > 0 && now - session.progressAt > replyMs) return true
    return false
  }

  /** A shape was subscribed while connected: subscribe it on this session too. */
  added(replica: ShapeReplica): void {
    if (!this.#link.active) return
    for (const s of this.#sessions.values()) if (s.replica === replica) return
    // The connection stays `live` while a shape added later catches up: writes and other shapes are unaffected.
    this.#subscribe(replica)
  }

  /** Reconciles these shapes again now by a fresh subscription that descends from the current roots. */
  repair(replicas: readonly ShapeReplica[]): void {
    if (!this.#link.active) return
    const wanted = new Set(replicas)
    // Collected first: subscribing adds sessions to the map being read.
    const stale = [...this.#sessions].filter(([, s]) => wanted.has(s.replica))
    for (const [sub, s] of stale) {
      this.#sessions.delete(sub)
      this.#link.send({ type: 'unsubscribe', sub })
      // A repair must descend: a replay from the cursor would not bring back what only this device lost.
      this.#dropCursor(s.replica)
      this.#subscribe(s.replica)
    }
  }

  /** A shape was unsubscribed: its subscription ends, and its cursor with it. */
  removed(replica: ShapeReplica): void {
    // Nothing keeps this shape's data current from now on: its cursor would vouch for stale data.
    this.#dropCursor(replica)
    for (const [sub, s] of this.#sessions) {
      if (s.replica !== replica) continue
      this.#sessions.delete(sub)
      this.#link.send({ type: 'unsubscribe', sub })
    }
    this.#link.progressed()
  }

  /** Forgets the shape's cursor at once (the next subscribe sends none) and durably soon after. */
  #dropCursor(replica: ShapeReplica): void {
    if (replica.cursor === undefined || this.#host.saveCursor === undefined) return
    replica.cursor = undefined
    this.#host.saveCursor(replica, undefined).catch((error: unknown) => this.#host.connectionChanged(serializeError(error)))
  }

  #subscribe(replica: ShapeReplica): void {
    const sub = this.#nextSub++
    const root = replica.tree.root()
    const session: ShapeSession = {
      replica,
      sub,
      subscribed: false,
      // The `subscribed` answer is owed from now: the watchdog covers it like any reply.
      outstanding: 1,
      reconciles: [],
      partialNodes: [],
      queued: [],
      synced: false,
      sentRoot: root.count === 0 ? undefined : root,
      cursor: undefined,
      pushed: false,
      progressAt: this.#link.now(),
    }
    this.#sessions.set(sub, session)
    const cursor = replica.cursor
    try {
      this.#link.send({ type: 'subscribe', sub, shape: replica.shape, ...(root.count === 0 ? {} : { root }), ...(cursor === undefined ? {} : { cursor }) })
    } catch (error) {
      // A shape too large to send can never be subscribed: report it, keep the connection.
      this.#sessions.delete(sub)
      this.#host.connectionChanged(serializeError(error))
    }
  }

  // ───────────────────────────── inbound ─────────────────────────────

  /** `subscribed`: settle it as the relay said (`resume`), or descend. */
  subscribed(sub: number, remoteRoot: MerkleNodeInfo, resume: ResumeMode | undefined): void {
    const session = this.#sessions.get(sub)
    if (session === undefined) return
    session.subscribed = true
    session.outstanding = Math.max(0, session.outstanding - 1)
    session.progressAt = this.#link.now()
    if (resume !== undefined) this.resumes[resume]++
    // A cursor the relay did not take (too old, another store, other claims) is no use again.
    if (resume !== 'cursor' && session.replica.cursor !== undefined) this.#dropCursor(session.replica)
    const sent = session.sentRoot
    // `cursor`, `current` and `slice` the relay settles itself (its root is not compared then); older relays say nothing.
    if (resume === 'cursor' || resume === 'current' || resume === 'slice' || sent === undefined || (resume === undefined && sent.hash === remoteRoot.hash)) {
      session.outstanding++
      return
    }
    this.#descend(session, [[session.replica.tree.root(), remoteRoot]])
  }

  /** `nodes`: the relay's children of the oldest `reconcile`; differing ones are settled further. */
  nodes(sub: number, part: readonly MerkleNodeInfo[], more: boolean): void {
    const session = this.#sessions.get(sub)
    if (session === undefined) return
    session.progressAt = this.#link.now()
    if (more) {
      // An answer cut to fit the frame limit: gather it until its last frame.
      session.partialNodes.push(...part)
      return
    }
    const remoteNodes = session.partialNodes.length === 0 ? part : [...session.partialNodes, ...part]
    session.partialNodes = []
    session.outstanding = Math.max(0, session.outstanding - 1)
    this.#pumpRequests(session)
    const tree = session.replica.tree
    const asked = session.reconciles.shift() ?? []
    const byParent = new Map<string, MerkleNodeInfo[]>(asked.map((path) => [path, []]))
    for (const node of remoteNodes) {
      if (node.path.length === 0) continue
      byParent.get(node.path.slice(0, -1))?.push(node)
    }
    const pairs: [MerkleNodeInfo, MerkleNodeInfo][] = []
    for (const [parent, children] of byParent) {
      // A parent the relay holds nothing under comes back without children: every local child differs.
      const remote = new Map(children.map((c) => [c.path, c]))
      for (const local of diffChildren(tree, parent, children)) {
        pairs.push([local, remote.get(local.path) ?? { path: local.path, hash: '0000000000000000', count: 0 }])
      }
    }
    this.#descend(session, pairs)
  }

  /** `changes`: records and move-outs for a subscription (slice, replay, reconciliation or live). */
  async changes(message: ChangesMessage): Promise<void> {
    const session = this.#sessions.get(message.sub)
    if (session !== undefined) session.progressAt = this.#link.now()
    await this.#host.applyChanges(session?.replica, message.changes, message.moveOut ?? [])
  }

  /** `push`: the relay lacks these keys; each replica uploads its own writes. */
  push(message: PushMessage): void {
    const session = this.#sessions.get(message.sub)
    if (session === undefined) return
    session.pushed = true
    // Each replica uploads its own writes: the relay accepts no other replica's registers from us.
    const records = this.#host.recordsFor(session.replica, message.keys).flatMap((change) => {
      const own = this.#host.ownPart === undefined ? change : this.#host.ownPart(change)
      return own === undefined ? [] : [own]
    })
    this.#link.sendRecords(records)
  }

  /** `synced`: one answer less; a shape with none left is synced and keeps its cursor. */
  async synced(message: SyncedMessage): Promise<void> {
    const session = this.#sessions.get(message.sub)
    if (session === undefined) return
    session.progressAt = this.#link.now()
    session.outstanding = Math.max(0, session.outstanding - 1)
    if (message.cursor !== undefined) session.cursor = message.cursor
    this.#pumpRequests(session)
    if (session.outstanding === 0) {
      session.synced = true
      this.#host.synced(message.serverTime)
      // Handled in arrival order: every change this cursor covers has been applied; the host writes it after that data.
      if (session.cursor !== undefined && !session.pushed && this.#host.saveCursor !== undefined) await this.#host.saveCursor(session.replica, session.cursor)
    }
    this.#link.progressed()
  }

  /** `resync`: drop the shape's data (and cursor) and subscribe it again from empty. */
  async resync(sub: number): Promise<void> {
    const session = this.#sessions.get(sub)
    if (session === undefined) return
    this.#sessions.delete(sub)
    this.#link.send({ type: 'unsubscribe', sub })
    await this.#host.resetShape(session.replica)
    this.#subscribe(session.replica)
  }

  /** An `error` for a subscription (ignored when no current subscription has that id). */
  async refused(sub: number, error: SerializedError): Promise<void> {
    const session = this.#sessions.get(sub)
    if (session === undefined) return
    // One record the relay cannot send (stored too large): reported, the slice goes on.
    if (error.code === 'VALUE_TOO_LARGE') {
      this.#host.connectionChanged(error)
      return
    }
    // A shape the relay refuses must not hold the connection out of `live`.
    this.#sessions.delete(sub)
    // The user may no longer read it (rules or claims changed): what this device holds of it goes.
    if (error.code === 'FORBIDDEN') await this.#host.resetShape(session.replica)
    this.#host.connectionChanged(error)
    this.#link.progressed()
  }

  // ───────────────────────────── Merkle descent ─────────────────────────────

  /**
   * Settles differing nodes: small or leaf ones by entry exchange, big ones by asking for
   * children. Requests queue per shape and at most {@link MAX_OUTSTANDING_PER_SHAPE} are in
   * flight, so however large the divergence, the relay's answers arrive as they are asked for.
   */
  #descend(session: ShapeSession, pairs: readonly (readonly [MerkleNodeInfo, MerkleNodeInfo])[]): void {
    const tree = session.replica.tree
    const reconcile: MerkleNodeInfo[] = []
    for (const [local, remote] of pairs) {
      if (needsEntryExchange(local, remote, tree.depth)) {
        session.queued.push(() => this.#sendEntries(session, local.path))
      } else {
        reconcile.push(local)
      }
    }
    for (let i = 0; i < reconcile.length; i += RECONCILE_NODES_PER_FRAME) {
      const nodes = reconcile.slice(i, i + RECONCILE_NODES_PER_FRAME)
      session.queued.push(() => {
        session.reconciles.push(nodes.map((n) => n.path))
        this.#link.send({ type: 'reconcile', sub: session.sub, nodes })
      })
    }
    this.#pumpRequests(session)
    session.synced = session.outstanding === 0 && session.queued.length === 0
    this.#link.progressed()
  }

  /** Sends queued reconciliation requests while fewer than {@link MAX_OUTSTANDING_PER_SHAPE} are unanswered. */
  #pumpRequests(session: ShapeSession): void {
    while (session.outstanding < MAX_OUTSTANDING_PER_SHAPE && session.queued.length > 0) {
      const send = session.queued.shift() as () => void
      if (session.outstanding === 0) session.progressAt = this.#link.now()
      session.outstanding++
      send()
    }
  }

  /** The `[key, digest]` list under `path`, cut into frames by bytes (`more` on all but the last). */
  #sendEntries(session: ShapeSession, path: string): void {
    const entries = session.replica.tree.entries(path)
    const budget = itemBudget(this.#link.limits)
    const batches = [...packBySize(entries, ([key]) => ({ bytes: keySize(key).bytes + ENTRY_PAIR_SIZE.bytes, elements: ENTRY_PAIR_SIZE.elements }), budget, 50_000)]
    if (batches.length === 0) batches.push([])
    batches.forEach((batch, i) => {
      this.#link.send({ type: 'entries', sub: session.sub, path, entries: batch, ...(i < batches.length - 1 ? { more: true as const } : {}) })
    })
  }
}
