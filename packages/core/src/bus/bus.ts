/**
 * The seam between relays: what one relay process tells the others when several share one
 * store. Implementations: {@link MemoryBus} (several relays in one process, for tests), the
 * Postgres bus (LISTEN/NOTIFY) and the Redis Streams bus in `@outpost/server-lite`. A bus is
 * done when `runBusTests` from `@outpost/core/testing` passes against it.
 *
 * ## What travels
 * - **Hints** (`{ map, seq }`, one batch per committed store transaction): "map m reached
 *   sequence n". A hint is a poke, never data: the store is the truth, and a relay that gets
 *   one reads the map's change log from its own last sequence. A lost hint loses no data,
 *   only time — the relay also polls, and a bus signals every gap it knows of.
 * - **Topic messages** (ephemeral pub/sub): topic, publisher replica id, the publisher's own
 *   sequence number, and payload bytes. Nothing is stored beyond the bus's short retention.
 * - **Events** on named channels: small coordination facts (a lock released, …) as a
 *   {@link Value}.
 *
 * ## Guarantees every implementation keeps
 * 1. **Every other relay, never the publisher's own.** A message published through one bus
 *    instance reaches the subscribers of that channel on every *other* instance; the
 *    publishing instance never receives its own messages (its relay delivers locally,
 *    without the round trip).
 * 2. **Publish order per instance.** Messages published through one instance reach each
 *    other instance in the order `publish*` was called, across hints, topics and events.
 *    So a publisher replica connected to one relay is delivered in its order everywhere.
 *    (A publisher that moves to another relay mid-stream starts a new order; its `seq`
 *    lets a receiver tell.)
 * 3. **No silent loss.** While an instance is connected, everything published to it by a
 *    connected instance is delivered. What it may have missed — while disconnected, or by
 *    falling behind the bus's retention — is followed by a `reconnected` or `overrun`
 *    {@link BusStatusEvent}; a relay answers both by catching up from the store.
 * 4. **Bounded.** Every message is at most `limits.maxMessageBytes` as the bus encodes it
 *    ({@link busMessageBytes}); a larger one is refused with `BusMessageTooLargeError`
 *    and nothing of it is sent. Bad input (an empty map name, a lone surrogate, a negative
 *    sequence) is refused with `InvalidKeyError` / `InvalidValueError`.
 * 5. **Publish is acknowledged.** `publish*` resolves once the transport accepted the
 *   message (the NOTIFY committed, the XADD answered); it rejects with `BusError` while the
 *   instance is disconnected or when the transport fails, and with `BusClosedError` after
 *   {@link Bus.close}.
 * 6. **Asynchronous delivery.** Listeners are never called inside `publish*` or
 *   `subscribe*`. An error a listener throws goes to `onStatus` as `listener-error`; it
 *   never stops delivery to other listeners.
 */
import type { Value } from '../types'

/** "`map` has committed changes up to sequence `seq`": one per map of a committed batch. */
export interface MapHint {
  /** The map's name (1–256 characters, well-formed). */
  readonly map: string
  /** The map's head sequence number after the commit (a non-negative safe integer). */
  readonly seq: number
}

/** An ephemeral topic message as relays relay it. */
export interface BusTopicMessage {
  /** The topic (1–256 characters, well-formed). */
  readonly topic: string
  /** The publisher's replica id (1–128 characters, well-formed). */
  readonly publisher: string
  /** The publisher's own sequence number, counting from 1 (a safe integer). */
  readonly seq: number
  /** The message, opaque to the bus (typically the relay's encoded `topic-msg` frame). */
  readonly payload: Uint8Array
}

/** A small coordination event on a named channel. */
export interface BusEvent {
  /** The channel (1–256 characters, well-formed). */
  readonly channel: string
  /** What happened (any {@link Value}; bounded with the rest of the message). */
  readonly value: Value
}

/** Where a delivered message came from. */
export interface BusOrigin {
  /** The publishing bus instance ({@link Bus.node}). Empty for hints a bus found by polling the store. */
  readonly node: string
  /** The publisher's clock (ms since the epoch) when `publish*` was called; undefined for polled hints. */
  readonly publishedAt: number | undefined
}

/**
 * A bus instance's connection state (see `bus-state.ts` for the diagram and the table):
 * `connecting` until the first connection, `connected`, `reconnecting` after losing it,
 * `closed` for good.
 */
export type BusState = 'connecting' | 'connected' | 'reconnecting' | 'closed'

/** What a bus tells its relay about itself. */
export type BusStatusEvent =
  /** The connection is lost; publishes are refused and messages may be missed until `reconnected`. */
  | { readonly type: 'disconnected'; readonly reason: string }
  /** Back after `downMs`: messages published meanwhile may be lost, so catch up from the store. */
  | { readonly type: 'reconnected'; readonly downMs: number }
  /** Connected, but this instance fell behind the bus's retention and messages were lost: catch up from the store. */
  | { readonly type: 'overrun'; readonly reason: string }
  /** A listener threw; delivery carried on. */
  | { readonly type: 'listener-error'; readonly error: unknown }

/** A bus instance's health, for `/readyz` and `/metrics`. */
export interface BusHealth {
  readonly state: BusState
  /** `state === 'connected'`. */
  readonly connected: boolean
  /**
   * Publish → delivery time of the newest delivered message, in ms (publisher's clock to
   * receiver's clock, so skew between relay hosts shows in it); undefined before the first.
   */
  readonly lastLagMs: number | undefined
  /** Messages published through this instance and accepted by the transport. */
  readonly published: number
  /** Messages from other instances delivered here (each counted once, however many listeners). */
  readonly delivered: number
  /** Times the connection came back after being lost. */
  readonly reconnects: number
  /** `reconnected` plus `overrun` signals so far: the times this instance may have missed messages. */
  readonly gaps: number
  /** The last transport or listener error, for logs and `/readyz`; undefined when none. */
  readonly lastError: string | undefined
}

/** The bounds of one bus instance. */
export interface BusLimits {
  /** Largest message as the bus encodes it ({@link busMessageBytes}); larger ones get `BusMessageTooLargeError`. */
  readonly maxMessageBytes: number
}

/** Stops a subscription; calling it again does nothing. */
export type Unsubscribe = () => void

/** One relay's handle on the bus; see the module comment for the guarantees. */
export interface Bus {
  /** 'memory' | 'postgres' | 'redis' … */
  readonly name: string
  /** This instance's id, unique among the instances of one bus; it is {@link BusOrigin.node} of what it publishes. */
  readonly node: string
  readonly limits: BusLimits
  /** Publishes one committed batch's hints as one message (an empty list publishes nothing). */
  publishHints(hints: readonly MapHint[]): Promise<void>
  /** Publishes a topic message. */
  publishTopic(message: BusTopicMessage): Promise<void>
  /** Publishes an event on its channel. */
  publishEvent(event: BusEvent): Promise<void>
  /** Calls `listener` with every batch of hints from other instances (and, where the bus polls the store, hints it found). */
  onHints(listener: (hints: readonly MapHint[], origin: BusOrigin) => void): Unsubscribe
  /** Calls `listener` with every message on `topic` from other instances. */
  subscribeTopic(topic: string, listener: (message: BusTopicMessage, origin: BusOrigin) => void): Unsubscribe
  /** Calls `listener` with every event on `channel` from other instances. */
  subscribeEvents(channel: string, listener: (event: BusEvent, origin: BusOrigin) => void): Unsubscribe
  /** Calls `listener` with every status change (connection lost, back, overrun, listener errors). */
  onStatus(listener: (event: BusStatusEvent) => void): Unsubscribe
  /** Calls `listener` with the publish → delivery time (ms) of every delivered message, for a lag histogram. */
  onLag(listener: (lagMs: number) => void): Unsubscribe
  /** The instance's health now. */
  health(): BusHealth
  /**
   * Sends what was already accepted for publishing, stops delivering, and releases every
   * connection, timer and listener. Afterwards `publish*` rejects and `subscribe*`/`on*`
   * throw `BusClosedError`; `close` itself may be called again.
   */
  close(): Promise<void>
}
