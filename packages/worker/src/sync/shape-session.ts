/**
 * What shape sync needs from the engine and the session, and what it keeps per
 * subscription; the behaviour is in `shape-sync.ts`.
 */
import type { Change, ClientMessage, MerkleNodeInfo, ReconcileInitiator, SerializedError, WireLimits } from '@outpost/core'
import type { Outbox } from '../outbox'
import type { FrameGaps } from './frame-gaps'
import type { ShapeReplica } from './shape-replica'
import type { ResumeMode } from './shape-sync'

/** How a `changes` frame arrived: live or reconciliation (`false`), a paced replay (`true`), or a paced slice (`'slice'`, in Merkle leaf order). */
export type Bulk = boolean | 'slice'

/** What shape sync needs from the engine. */
export interface ShapeHost {
  shapeReplicas(): ShapeReplica[]
  /**
   * `bulk`: the frame is part of a paced stream (a slice or a replay), which the host may
   * load in bulk; `'slice'`: a paced slice, which arrives in Merkle leaf (key hash) order.
   */
  applyChanges(replica: ShapeReplica | undefined, changes: readonly Change[], moveOut: readonly string[], bulk?: Bulk): Promise<void>
  resetShape(replica: ShapeReplica): Promise<void>
  recordsFor(replica: ShapeReplica, keys: readonly string[]): Change[]
  /** Writes of this replica in `change` only: what a `push` reply may carry (each replica uploads its own writes). */
  ownPart?(change: Change): Change | undefined
  synced(serverTime: number): void
  /** Writes of ours not yet acknowledged (a root check waits until the shape's map has none). */
  pendingOps(): Pick<Outbox, 'pending'>
  saveCursor?(replica: ShapeReplica, cursor: string | undefined): Promise<void>
  connectionChanged(error?: SerializedError): void
}

/** What shape sync needs from the session. */
export interface ShapeLink {
  /** True when a welcomed session is up (`syncing` or `live`). */
  readonly active: boolean
  readonly limits: WireLimits
  /** The relay welcomed with `cursorWithoutRoot`: a subscribe with a cursor may leave out the root. */
  readonly cursorWithoutRoot: boolean
  send(message: ClientMessage): void
  now(): number
  /** Sends records the relay asked for (`push`) as `ops`. */
  sendRecords(records: readonly Change[]): void
  /** A shape finished (or stopped counting): the session may now be synced. */
  progressed(): void
}

export interface ShapeSession {
  readonly replica: ShapeReplica
  readonly sub: number
  /** Core's descent over this shape's tree (see core's `sync/reconcile.ts`); made when a descent starts, so a resume by cursor builds no tree. */
  initiator: ReconcileInitiator | undefined
  subscribed: boolean
  /** How the relay said it brings this subscription up to date (`subscribed.resume`). */
  resume: ResumeMode | undefined
  /** Replies still expected: one `nodes` per `reconcile`, one `synced` per `entries` (or per subscribe the relay settles itself). */
  outstanding: number
  /** The paths of each `reconcile` sent, in order: a `nodes` reply answers the oldest. */
  readonly reconciles: string[][]
  /** Nodes of a `nodes` answer cut into several frames (`more`), gathered until its last frame. */
  partialNodes: MerkleNodeInfo[]
  /** Reconciliation requests waiting for room under `MAX_OUTSTANDING_PER_SHAPE` (`shape-sync.ts`). */
  readonly queued: (() => void)[]
  synced: boolean
  /** The root sent with `subscribe` (none when the shape was empty locally). */
  readonly sentRoot: MerkleNodeInfo | undefined
  /** Whether `subscribe` carried the shape's cursor (a root check sends none). */
  readonly sentCursor: boolean
  /** A root check (see the module comment), not a sync the session needs. */
  readonly check: boolean
  /** The newest cursor a `synced` of this subscription carried. */
  cursor: string | undefined
  /** The relay asked for records of this shape (`push`): this sync keeps no cursor. */
  pushed: boolean
  /** A change of this sync was refused at receipt (malformed): the shape is not the relay's, so this sync keeps no cursor. */
  refused: boolean
  /** When a reply for this shape last arrived (or was first owed): the watchdog restarts a session stuck longer than the reply timeout. */
  progressAt: number
  /** Live `changes` frames seen and missing (relays that number them; see the module comment). */
  readonly frames: FrameGaps
  /** When this subscription was made: the next root check is due `antiEntropyMs` after. */
  readonly startedAt: number
}
