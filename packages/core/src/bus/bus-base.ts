/**
 * What every {@link Bus} implementation shares, written once: input checks and the size
 * bound at publish, the connection state machine and its signals, listener registries,
 * delivery with lag measurement, and health counters. An implementation extends
 * {@link BusBase} and supplies the transport: {@link BusBase.transmit} (send one message,
 * keeping call order) and {@link BusBase.release} (flush and free everything on close),
 * and reports what its transport does through `connectionEvent`, `deliver` and `signal`.
 */
import { BusClosedError, BusError, BusMessageTooLargeError } from '../errors'
import type { Bus, BusEvent, BusHealth, BusLimits, BusOrigin, BusState, BusStatusEvent, BusTopicMessage, MapHint, Unsubscribe } from './bus'
import { busTransition, type BusConnectionEvent } from './bus-state'
import { DEFAULT_BUS_MESSAGE_BYTES, assertBusEvent, assertHints, assertTopicMessage, encodeBusItem, type BusItem } from './frame'

/** Options every implementation accepts. */
export interface BusBaseOptions {
  /** Largest message as encoded (`busMessageBytes` in `@outpost/core`); default `DEFAULT_BUS_MESSAGE_BYTES` (1 MiB + 4 KiB). */
  readonly maxMessageBytes?: number
  /** The clock used for publish times and lag (ms since the epoch); default `Date.now`. */
  readonly now?: () => number
}

type HintListener = (hints: readonly MapHint[], origin: BusOrigin) => void
type TopicListener = (message: BusTopicMessage, origin: BusOrigin) => void
type EventListener = (event: BusEvent, origin: BusOrigin) => void

/** Adds `listener` to the set under `key`, creating it; returns the unsubscribe that removes it (and the set when empty). */
function addTo<L>(registry: Map<string, Set<L>>, key: string, listener: L): Unsubscribe {
  let set = registry.get(key)
  if (set === undefined) {
    set = new Set()
    registry.set(key, set)
  }
  set.add(listener)
  return () => {
    const current = registry.get(key)
    if (current === undefined || !current.delete(listener)) return
    if (current.size === 0) registry.delete(key)
  }
}

/** The shared half of every bus; see the module comment. */
export abstract class BusBase implements Bus {
  abstract readonly name: string
  readonly node: string
  readonly limits: BusLimits
  protected readonly now: () => number
  #state: BusState = 'connecting'
  #downSince = 0
  #closing: Promise<void> | undefined
  readonly #hints = new Set<HintListener>()
  readonly #topics = new Map<string, Set<TopicListener>>()
  readonly #events = new Map<string, Set<EventListener>>()
  readonly #status = new Set<(event: BusStatusEvent) => void>()
  readonly #lag = new Set<(lagMs: number) => void>()
  #published = 0
  #delivered = 0
  #reconnects = 0
  #gaps = 0
  #lastLagMs: number | undefined
  #lastError: string | undefined

  protected constructor(node: string, options: BusBaseOptions = {}) {
    const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_BUS_MESSAGE_BYTES
    if (!Number.isSafeInteger(maxMessageBytes) || maxMessageBytes < 64) throw new BusError(`maxMessageBytes must be an integer of at least 64, got ${maxMessageBytes}`)
    this.node = node
    this.limits = { maxMessageBytes }
    this.now = options.now ?? Date.now
  }

  /**
   * Sends one encoded message. Called in publish order, synchronously from `publish*`;
   * the transport must deliver in the order of these calls. Resolves once it accepted it.
   */
  protected abstract transmit(item: BusItem, bytes: Uint8Array): Promise<void>

  /** Sends what `transmit` already accepted, then frees every connection and timer. Called once, by `close`. */
  protected abstract release(): Promise<void>

  /** The current state. */
  get state(): BusState {
    return this.#state
  }

  // ───────────────────────────── publishing ─────────────────────────────

  publishHints(hints: readonly MapHint[]): Promise<void> {
    return this.#publish(() => {
      assertHints(hints)
      return hints.length === 0 ? undefined : { kind: 'hints', at: this.now(), hints: hints.map((h) => ({ map: h.map, seq: h.seq })) }
    })
  }

  publishTopic(message: BusTopicMessage): Promise<void> {
    return this.#publish(() => {
      assertTopicMessage(message)
      return { kind: 'topic', at: this.now(), message: { topic: message.topic, publisher: message.publisher, seq: message.seq, payload: message.payload } }
    })
  }

  publishEvent(event: BusEvent): Promise<void> {
    return this.#publish(() => {
      assertBusEvent(event)
      return { kind: 'event', at: this.now(), event: { channel: event.channel, value: event.value } }
    })
  }

  /** Not `async`: `transmit` must be called in the same turn as `publish*`, so calls keep their order. */
  #publish(build: () => BusItem | undefined): Promise<void> {
    try {
      if (this.#state === 'closed') throw new BusClosedError(`The ${this.name} bus is closed; open a new one`)
      const item = build()
      if (item === undefined) return Promise.resolve()
      const bytes = encodeBusItem(item)
      if (bytes.length > this.limits.maxMessageBytes) {
        throw new BusMessageTooLargeError(`This bus message is ${bytes.length} bytes, over the bus's ${this.limits.maxMessageBytes}-byte limit; send less data`, { bytes: bytes.length, limitBytes: this.limits.maxMessageBytes })
      }
      if (this.#state !== 'connected') throw new BusError(`The ${this.name} bus is ${this.#state}; nothing was sent. Other relays catch up from the store when it is back`, { state: this.#state })
      return this.transmit(item, bytes).then(() => {
        this.#published++
      })
    } catch (error) {
      return Promise.reject(error)
    }
  }

  // ───────────────────────────── subscribing ─────────────────────────────

  #checkOpen(): void {
    if (this.#state === 'closed') throw new BusClosedError(`The ${this.name} bus is closed; open a new one`)
  }

  onHints(listener: HintListener): Unsubscribe {
    this.#checkOpen()
    this.#hints.add(listener)
    return () => void this.#hints.delete(listener)
  }

  subscribeTopic(topic: string, listener: TopicListener): Unsubscribe {
    this.#checkOpen()
    return addTo(this.#topics, topic, listener)
  }

  subscribeEvents(channel: string, listener: EventListener): Unsubscribe {
    this.#checkOpen()
    return addTo(this.#events, channel, listener)
  }

  onStatus(listener: (event: BusStatusEvent) => void): Unsubscribe {
    this.#checkOpen()
    this.#status.add(listener)
    return () => void this.#status.delete(listener)
  }

  onLag(listener: (lagMs: number) => void): Unsubscribe {
    this.#checkOpen()
    this.#lag.add(listener)
    return () => void this.#lag.delete(listener)
  }

  // ───────────────────────────── for implementations ─────────────────────────────

  /** Feeds the state machine (`bus-state.ts`) and emits its signal. */
  protected connectionEvent(event: BusConnectionEvent, reason?: string): void {
    const before = this.#state
    const { state, signal } = busTransition(before, event)
    this.#state = state
    if (reason !== undefined) this.#lastError = reason
    if (signal === 'disconnected') {
      this.#downSince = this.now()
      this.signal({ type: 'disconnected', reason: reason ?? 'connection lost' })
    } else if (signal === 'reconnected') {
      this.#reconnects++
      this.signal({ type: 'reconnected', downMs: Math.max(0, this.now() - this.#downSince) })
    }
  }

  /** Records a transport error for `health().lastError` without changing state. */
  protected noteError(error: unknown): void {
    this.#lastError = error instanceof Error ? error.message : String(error)
  }

  /** Tells every status listener; `reconnected` and `overrun` count as gaps. */
  protected signal(event: BusStatusEvent): void {
    if (this.#state === 'closed') return
    if (event.type === 'reconnected' || event.type === 'overrun') this.#gaps++
    if (event.type === 'overrun') this.#lastError = event.reason
    for (const listener of [...this.#status]) {
      try {
        listener(event)
      } catch (error) {
        // A status listener that throws must not stop the others; it is only remembered.
        this.noteError(error)
      }
    }
  }

  /** Delivers messages from another instance, in order, to the current listeners. */
  protected deliver(node: string, items: readonly BusItem[]): void {
    for (const item of items) {
      if (this.#state === 'closed') return
      const lag = Math.max(0, this.now() - item.at)
      this.#lastLagMs = lag
      this.#delivered++
      const origin: BusOrigin = { node, publishedAt: item.at }
      if (item.kind === 'hints') this.#call(this.#hints, (l) => l(item.hints, origin))
      else if (item.kind === 'topic') this.#call(this.#topics.get(item.message.topic), (l) => l(item.message, origin))
      else this.#call(this.#events.get(item.event.channel), (l) => l(item.event, origin))
      for (const listener of [...this.#lag]) this.#guard(() => listener(lag))
    }
  }

  /** Delivers hints the implementation found itself (by polling the store): no origin node, no lag. */
  protected deliverFound(hints: readonly MapHint[]): void {
    if (this.#state === 'closed' || hints.length === 0) return
    const origin: BusOrigin = { node: '', publishedAt: undefined }
    this.#call(this.#hints, (l) => l(hints, origin))
  }

  /** Calls each listener still subscribed when its turn comes (an unsubscribe during delivery takes effect at once). */
  #call<L>(set: Set<L> | undefined, call: (listener: L) => void): void {
    if (set === undefined) return
    for (const listener of [...set]) if (set.has(listener)) this.#guard(() => call(listener))
  }

  #guard(run: () => void): void {
    try {
      run()
    } catch (error) {
      this.noteError(error)
      this.signal({ type: 'listener-error', error })
    }
  }

  // ───────────────────────────── health and close ─────────────────────────────

  health(): BusHealth {
    return {
      state: this.#state,
      connected: this.#state === 'connected',
      lastLagMs: this.#lastLagMs,
      published: this.#published,
      delivered: this.#delivered,
      reconnects: this.#reconnects,
      gaps: this.#gaps,
      lastError: this.#lastError,
    }
  }

  close(): Promise<void> {
    if (this.#closing === undefined) {
      this.connectionEvent('close')
      this.#hints.clear()
      this.#topics.clear()
      this.#events.clear()
      this.#status.clear()
      this.#lag.clear()
      this.#closing = this.release()
    }
    return this.#closing
  }
}
