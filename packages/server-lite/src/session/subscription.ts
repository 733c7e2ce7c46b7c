/**
 * What one subscription is on the relay, and what its parts (`subscriptions.ts`, the
 * paced streams of `paced-streams.ts`, the Merkle answers of `merkle-answers.ts`) need
 * from their session and from each other.
 */
import type { Change, CountedFrame, ReconcileTree, ServerMessage, WireLimits } from '@outpost/core'
import type { MapAccess } from '../auth/rules'
import type { RelayContext } from '../relay-context'
import type { OutRecord } from '../sync/fan-out'
import type { MapState } from '../sync/map-catalog'
import type { Subscriber } from '../sync/sync-service'

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
  /** Encodes a message in the session's wire version, not sent yet (undefined when it cannot be encoded). */
  encode(message: ServerMessage): CountedFrame | undefined
  /** Sends a frame `encode` made; returns its length (0 when nothing was sent). */
  sendEncoded(frame: Uint8Array): number
  /** The wire version `hello` negotiated (frames encoded once for many sessions are encoded per version). */
  readonly version: number
  /** Bytes waiting in the transport's send buffer. */
  bufferedBytes(): number
  /** What the caller may do on `map`. */
  access(map: string): MapAccess
}

/** One subscription of a session. */
export interface Subscription extends Subscriber {
  readonly access: MapAccess
  readonly state: MapState
  /** The map's head sequence number when the subscription joined its view: what its cursors cover. */
  readonly head: number
  /** `changes` frames sent for this subscription so far: each carries its number (`frame`), each `synced` the count. */
  frames: number
  closed: boolean
}

/** A record as a subscription sends it (projected on the shape's fields). */
export type { OutRecord }

/** Most records in one `changes` frame; frames are cut by exact bytes first. */
export const FRAME_RECORDS = 2_000

/** What the paced streams and the Merkle answers use of the subscriptions. */
export interface SubscriptionOut {
  readonly host: SubscriptionHost
  /** The frame limits (bytes, elements) every frame sent must fit. */
  readonly limits: WireLimits
  /** Cuts records then move-outs into frames that fit (a record too large for any frame is reported instead). */
  frames(sub: Subscription, records: readonly OutRecord[], moveOut: readonly string[]): Iterable<{ changes: Change[]; moveOut: string[] }>
  /** Sends records and move-outs now, numbered (`frame`). */
  sendChanges(sub: Subscription, records: readonly OutRecord[], moveOut: readonly string[]): void
  /** Ends a sync path: `synced` with the cursor of `head` and the count of frames sent. */
  synced(sub: Subscription, head: number): Promise<void>
  /** The view's Merkle tree. */
  tree(sub: Subscription): Promise<ReconcileTree>
}
