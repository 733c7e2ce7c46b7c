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
 * A shape with a cursor sends no root to a relay that welcomed with `cursorWithoutRoot`:
 * the tree (built from every record of the shape) is then built only when the relay cannot
 * use the cursor, answers `merkle`, and the shape subscribes again with its root.
 *
 * Cursors: the relay ends each sync path with `synced {cursor}`. Once a shape has no
 * answer outstanding, its newest cursor is kept durably (the engine flushes the shape data
 * first, so a stored cursor never covers data the store lacks) and sent with the next
 * `subscribe`. A cursor is dropped, durably and before the data, whenever the shape's data
 * is (`resync`, FORBIDDEN, unsubscribe), before a repair (which must descend), and when
 * the relay did not take it. A sync in which the relay asked for records (`push`) keeps
 * no cursor: those uploads are not in the outbox, so the next connection descends again
 * rather than trust a cursor that may not cover them; nor does one in which a change was
 * refused at receipt (malformed: see core's `received-change.ts`), which left the shape
 * short of the relay's. Cursors belong to the relay's store:
 * a relay over another (or a wiped) store refuses them and falls back on its own.
 *
 * Anti-entropy while live (a frame lost inside an open connection, e.g. by a middlebox or a
 * relay that dropped it, is repaired without a reconnect), driven by the connection's
 * watchdog tick ({@link ShapeSync.tick}):
 *   - gap: the relay numbers each subscription's live `changes` frames (`live`); a number
 *     that skips one and is still missing `GAP_GRACE_MS` (`frame-gaps.ts`) later (a reordered frame
 *     fills in before) makes the shape catch up: a fresh subscription with its cursor
 *     (replay since the last complete sync) and its root (Merkle when the cursor is gone);
 *   - check: every `antiEntropyMs` (default {@link DEFAULT_ANTI_ENTROPY_MS}) a synced,
 *     idle shape with no write of ours pending compares roots by a fresh subscription with
 *     its root and no cursor: `current` costs one small frame each way; a difference is
 *     settled by the usual descent. This catches a lost last frame, which no gap reveals.
 * A fresh subscription is sent before the old one ends, so the relay's view stays warm.
 */
import {
  ReconcileInitiator,
  checkReceivedChanges,
  itemBudget,
  keySize,
  packBySize,
  serializeError,
  type Change,
  type ChangesMessage,
  type ClientMessage,
  type FrameSize,
  type MerkleNodeInfo,
  type PushMessage,
  type ReconcileStep,
  type SerializedError,
  type SyncedMessage,
  type WireLimits,
} from '@outpost/core'
import { FrameGaps } from './frame-gaps'
import type { ShapeReplica } from './shape-replica'
import type { ShapeHost, ShapeLink, ShapeSession } from './shape-session'

/** How the relay brings a subscription up to date (`subscribed.resume`). */
export type ResumeMode = 'cursor' | 'slice' | 'merkle' | 'current'

/** Nodes per `reconcile` frame: the relay's answer (16 children each, about 60 B per node) stays well under 1 MiB. */
const RECONCILE_NODES_PER_FRAME = 512
/** Reconciliation requests (reconcile, entries) in flight per shape; more wait for answers, so a large divergence never floods the relay's send buffer. */
const MAX_OUTSTANDING_PER_SHAPE = 16
/** Default interval (ms) of the live root check of each shape; see the module comment. */
export const DEFAULT_ANTI_ENTROPY_MS = 30_000
/** Size of one `[key, digest]` pair in an `entries` list, beyond the key itself. */
const ENTRY_PAIR_SIZE: FrameSize = { bytes: 1 + 17, elements: 2 }

/** Every shape's subscription on the current session; see the module comment. */
export class ShapeSync {
  readonly #host: ShapeHost
  readonly #link: ShapeLink
  readonly #sessions = new Map<number, ShapeSession>()
  #nextSub = 1
  /** Subscriptions answered per resume mode. @internal */
  readonly resumes: Record<ResumeMode, number> = { cursor: 0, slice: 0, merkle: 0, current: 0 }

  /** Shapes caught up after a lost live frame, and root checks that found a difference. @internal */
  readonly antiEntropy = { gaps: 0, checks: 0, checksDiffered: 0 }
  readonly #checkMs: number

  constructor(host: ShapeHost, link: ShapeLink, antiEntropyMs = DEFAULT_ANTI_ENTROPY_MS) {
    this.#host = host
    this.#link = link
    this.#checkMs = antiEntropyMs
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
    // Not synced with nothing owed cannot last (queued requests go as answers come): stuck all the same.
    for (const session of this.#sessions.values()) if ((session.outstanding > 0 || !session.synced) && now - session.progressAt > replyMs) return true
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
    const stale = [...this.#sessions.values()].filter((s) => wanted.has(s.replica))
    for (const s of stale) {
      // A repair must descend: a replay from the cursor would not bring back what only this device lost.
      this.#dropCursor(s.replica)
      this.#resubscribe(s, 'descend')
    }
  }

  /**
   * The watchdog's tick while a session is up: catches up shapes that lost a live frame, and
   * checks the roots of idle shapes every `antiEntropyMs`; see the module comment.
   */
  tick(now: number): void {
    if (!this.#link.active) return
    let pendingMaps: Set<string> | undefined
    // Collected first: resubscribing adds sessions to the map being read.
    for (const session of [...this.#sessions.values()]) {
      if (session.frames.overdue(now)) {
        this.antiEntropy.gaps++
        this.#resubscribe(session, 'sync')
        continue
      }
      if (!session.subscribed || !session.synced || session.outstanding > 0 || session.queued.length > 0 || now - session.startedAt < this.#checkMs) continue
      pendingMaps ??= new Set(this.#host.pendingOps().pending().map((entry) => entry.change.map))
      // Our own unacknowledged writes make the roots differ until they are acked: check after.
      if (pendingMaps.has(session.replica.shape.map)) continue
      this.antiEntropy.checks++
      this.#resubscribe(session, 'check')
    }
  }

  /**
   * Replaces a subscription by a fresh one on this session: `sync` sends the shape's cursor
   * (when it has one) and root, `check` only the root (the relay answers `current`, or the
   * descent starts). The new one is subscribed before the old one ends, so the relay's
   * view of the shape never goes cold in between.
   */
  #resubscribe(session: ShapeSession, purpose: 'sync' | 'descend' | 'check'): void {
    this.#sessions.delete(session.sub)
    this.#subscribe(session.replica, purpose)
    this.#link.send({ type: 'unsubscribe', sub: session.sub })
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

  /**
   * Subscribes `replica` on this session. `sync` sends its cursor (when it has one) and its
   * root, leaving the root out when the relay takes a cursor alone; `descend` and `check`
   * send only the root (see {@link ShapeSync.subscribed} and {@link ShapeSync.tick}).
   */
  #subscribe(replica: ShapeReplica, purpose: 'sync' | 'descend' | 'check' = 'sync'): void {
    const sub = this.#nextSub++
    const cursor = purpose === 'sync' ? replica.cursor : undefined
    const root = cursor !== undefined && this.#link.cursorWithoutRoot ? undefined : replica.tree.root()
    const now = this.#link.now()
    const session: ShapeSession = {
      replica,
      sub,
      initiator: undefined,
      subscribed: false,
      resume: undefined,
      // The `subscribed` answer is owed from now: the watchdog covers it like any reply.
      outstanding: 1,
      reconciles: [],
      partialNodes: [],
      queued: [],
      synced: false,
      sentRoot: root === undefined || root.count === 0 ? undefined : root,
      sentCursor: cursor !== undefined,
      check: purpose === 'check',
      cursor: undefined,
      pushed: false,
      refused: false,
      progressAt: now,
      frames: new FrameGaps(() => this.#link.now()),
      startedAt: now,
    }
    this.#sessions.set(sub, session)
    try {
      this.#link.send({ type: 'subscribe', sub, shape: replica.shape, ...(session.sentRoot === undefined ? {} : { root: session.sentRoot }), ...(cursor === undefined ? {} : { cursor }) })
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
    // A duplicate, or one that comes after the `synced` that ended a path the relay settles itself (see `synced`).
    if (session === undefined || session.subscribed) return
    session.subscribed = true
    session.resume = resume
    session.outstanding = Math.max(0, session.outstanding - 1)
    session.progressAt = this.#link.now()
    // A cursor the relay did not take (too old, another store, other claims) is no use again.
    if (resume !== 'cursor' && session.sentCursor && session.replica.cursor !== undefined) this.#dropCursor(session.replica)
    const sent = session.sentRoot
    // A cursor sent alone that the relay could not use: subscribe again, now with the root.
    if (resume === 'merkle' && sent === undefined && session.sentCursor) {
      this.#resubscribe(session, 'descend')
      return
    }
    if (resume !== undefined) this.resumes[resume]++
    if (session.check && (resume === 'merkle' || resume === 'slice')) this.antiEntropy.checksDiffered++
    // `cursor`, `current` and `slice` the relay settles itself (its root is not compared then); older relays say nothing.
    if (resume === 'cursor' || resume === 'current' || resume === 'slice' || sent === undefined || (resume === undefined && sent.hash === remoteRoot.hash)) {
      session.outstanding++
      return
    }
    this.#descend(session, this.#initiator(session).start(remoteRoot))
  }

  #initiator(session: ShapeSession): ReconcileInitiator {
    session.initiator ??= new ReconcileInitiator(session.replica.tree, { maxNodesPerStep: RECONCILE_NODES_PER_FRAME })
    return session.initiator
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
    const asked = session.reconciles.shift() ?? []
    this.#descend(session, this.#initiator(session).onNodes(asked, remoteNodes))
  }

  /** `changes`: records and move-outs for a subscription (slice, replay, reconciliation or live). */
  async changes(message: ChangesMessage): Promise<void> {
    const session = this.#sessions.get(message.sub)
    // A subscription this client ended (replaced by a fresh one, refused, or its shape
    // removed): its frames still in flight are ignored. Merged, their records would sit in
    // the map outside every shape's members and tree, where no reconciliation sees them,
    // and their move-outs would be lost; the subscription that replaced it (it joined the
    // relay's view before this one left) brings the shape up to date instead.
    if (session === undefined) return
    // Live fan-out (it carries the map's sequence number) answers nothing owed: it must not hide a stalled reply from the watchdog.
    if (message.seq === undefined) session.progressAt = this.#link.now()
    if (message.frame !== undefined) session.frames.seen(message.frame)
    // Checked here, once: what is merged and stored from now on is trusted (see core's `received-change.ts`).
    // A malformed change is refused alone and reported; the session and the rest of the frame go on.
    const { accepted, error } = checkReceivedChanges(message.changes, 'The relay')
    if (error !== undefined) {
      session.refused = true
      this.#host.connectionChanged(serializeError(error))
    }
    // A paced slice streams in Merkle leaf order, which lets the host flush it in small steps (see the committer).
    await this.#host.applyChanges(session.replica, accepted, message.moveOut ?? [], message.paced !== true ? false : session.resume === 'slice' ? 'slice' : true)
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
    // The relay sends `synced` only after `subscribed`: one lost (or late) on the way owes nothing more.
    session.subscribed = true
    session.outstanding = Math.max(0, session.outstanding - 1)
    if (message.cursor !== undefined) session.cursor = message.cursor
    if (message.frames !== undefined) session.frames.missUpTo(message.frames)
    this.#pumpRequests(session)
    if (session.outstanding === 0) {
      session.synced = true
      this.#host.synced(message.serverTime)
      // Handled in arrival order: every change this cursor covers has been applied; the host
      // writes it after that data. A lost `changes` frame voids it: the catch-up (see tick) repairs.
      if (session.cursor !== undefined && !session.pushed && !session.refused && !session.frames.open && this.#host.saveCursor !== undefined) await this.#host.saveCursor(session.replica, session.cursor)
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
   * Queues the initiator's next steps: `entries` for small or leaf nodes, `reconcile` (at
   * most {@link RECONCILE_NODES_PER_FRAME} nodes each) for big ones. At most
   * {@link MAX_OUTSTANDING_PER_SHAPE} are in flight, so however large the divergence, the
   * relay's answers arrive as they are asked for.
   */
  #descend(session: ShapeSession, steps: readonly ReconcileStep[]): void {
    for (const step of steps) {
      if (step.type === 'entries') {
        session.queued.push(() => this.#sendEntries(session, step.path))
        continue
      }
      session.queued.push(() => {
        session.reconciles.push(step.nodes.map((n) => n.path))
        this.#link.send({ type: 'reconcile', sub: session.sub, nodes: [...step.nodes] })
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
