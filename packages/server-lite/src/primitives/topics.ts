/**
 * Topics: ephemeral pub/sub between sessions. Nothing is stored: a message reaches the
 * sessions subscribed at the moment it is published, and is gone.
 *
 * Order: one session's frames are handled in socket order and a publish is fanned out
 * synchronously, so every subscriber sees one publisher's messages in the order it sent
 * them; `seq` numbers them per publisher replica (kept for the relay's lifetime) so a
 * receiver can tell order and gaps. The publisher's own session is skipped: the browser
 * engine delivers to its own tabs locally.
 *
 * Scale-out: the hub is per relay process; relaying topic messages between relay nodes
 * belongs to the bus and is not part of this file.
 */
import { FrameTooLargeError, ForbiddenError, RateLimitError, assertValue, encodeMessage, serializeError, type ReplicaId, type TopicPublishMessage } from '@outpost/core'
import type { RuleSet } from '../auth/rules'
import type { RelayMetrics } from '../metrics'
import type { Caller } from './caller'

/** Publisher replicas whose sequence the hub remembers; the oldest is forgotten beyond it. */
const MAX_PUBLISHERS = 100_000

/** Options of a {@link TopicHub}. */
export interface TopicHubOptions {
  readonly rules: RuleSet
  readonly metrics: RelayMetrics
  /** Topics one session may subscribe to. */
  readonly maxTopicsPerSession: number
  /** Largest frame a client accepts (the relay's own limit): a message that would not fit is refused. */
  readonly maxFrameBytes: number
}

/** The relay's topic subscriptions and fan-out; see the module comment. */
export class TopicHub {
  readonly #options: TopicHubOptions
  readonly #subscribers = new Map<string, Set<Caller>>()
  readonly #bySession = new Map<Caller, Set<string>>()
  readonly #seq = new Map<string, number>()

  constructor(options: TopicHubOptions) {
    this.#options = options
  }

  /** Number of topics with at least one subscriber. */
  get topicCount(): number {
    return this.#subscribers.size
  }

  /** Handles `topic-sub`: FORBIDDEN (without ref; the socket stays open) when the rules deny it. */
  subscribe(caller: Caller, topic: string): void {
    if (!this.#options.rules.topicAccess(topic, caller.principal).subscribe) {
      caller.send({ type: 'error', error: serializeError(new ForbiddenError(`You may not subscribe to topic ${topic.slice(0, 64)}`, { topic: topic.slice(0, 256) })) })
      return
    }
    let mine = this.#bySession.get(caller)
    if (mine?.has(topic) === true) return
    if ((mine?.size ?? 0) >= this.#options.maxTopicsPerSession) {
      caller.send({ type: 'error', error: serializeError(new RateLimitError(`At most ${this.#options.maxTopicsPerSession} topics per connection; unsubscribe from some first`, { topic: topic.slice(0, 256) })) })
      return
    }
    if (mine === undefined) {
      mine = new Set()
      this.#bySession.set(caller, mine)
    }
    mine.add(topic)
    let set = this.#subscribers.get(topic)
    if (set === undefined) {
      set = new Set()
      this.#subscribers.set(topic, set)
    }
    set.add(caller)
  }

  /** Handles `topic-unsub` (a topic not subscribed is ignored). */
  unsubscribe(caller: Caller, topic: string): void {
    const mine = this.#bySession.get(caller)
    if (mine === undefined || !mine.delete(topic)) return
    if (mine.size === 0) this.#bySession.delete(caller)
    const set = this.#subscribers.get(topic)
    set?.delete(caller)
    if (set?.size === 0) this.#subscribers.delete(topic)
  }

  /** Handles `topic-pub`: fans out to every other subscribed session, then acks with the count. */
  publish(caller: Caller, message: TopicPublishMessage): void {
    const fail = (error: Error): void => caller.send({ type: 'error', ref: message.id, error: serializeError(error) })
    if (!this.#options.rules.topicAccess(message.topic, caller.principal).publish) {
      fail(new ForbiddenError(`You may not publish to topic ${message.topic.slice(0, 64)}`, { topic: message.topic.slice(0, 256) }))
      return
    }
    try {
      assertValue(message.data, 'data')
    } catch (error) {
      fail(error as Error)
      return
    }
    const seq = this.#nextSeq(caller.replicaId)
    const frame = encodeMessage({ type: 'topic-msg', topic: message.topic, from: caller.replicaId as ReplicaId, seq, data: message.data })
    if (frame.length > this.#options.maxFrameBytes) {
      fail(new FrameTooLargeError(`This topic message would be ${frame.length} bytes delivered, over the ${this.#options.maxFrameBytes}-byte frame limit; send less data`, { bytes: frame.length }))
      return
    }
    this.#options.metrics.topicMessages.inc()
    let delivered = 0
    for (const subscriber of this.#subscribers.get(message.topic) ?? []) {
      if (subscriber === caller || !subscriber.isOpen) continue
      subscriber.sendFrame(frame)
      delivered++
    }
    caller.send({ type: 'topic-ack', id: message.id, delivered })
  }

  /** Forgets every subscription of a closed session. */
  sessionClosed(caller: Caller): void {
    for (const topic of [...(this.#bySession.get(caller) ?? [])]) this.unsubscribe(caller, topic)
  }

  #nextSeq(replica: string): number {
    const seq = (this.#seq.get(replica) ?? 0) + 1
    // Re-inserted so the map's order is least recently used first.
    this.#seq.delete(replica)
    this.#seq.set(replica, seq)
    if (this.#seq.size > MAX_PUBLISHERS) {
      const oldest = this.#seq.keys().next().value
      if (oldest !== undefined) this.#seq.delete(oldest)
    }
    return seq
  }
}
