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
 * Scale-out: with a bus, a published message also goes to the bus (its payload is the
 * encoded `topic-msg` frame), and the hub listens on the bus for every topic that has a
 * subscriber here, handing what other relays publish to its sessions as is. The bus keeps
 * each relay's publish order, so one publisher's order holds on every relay. The ack's
 * `delivered` counts the sessions of this relay only. A message published while the bus
 * is down reaches this relay's subscribers only (topics are ephemeral; nothing replays).
 */
import { FrameTooLargeError, ForbiddenError, RateLimitError, assertValue, encodeMessage, serializeError, type Bus, type ReplicaId, type TopicPublishMessage, type Unsubscribe } from '@outpost/core'
import type { Logger } from 'pino'
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
  /** Other relays sharing the store, when there are. */
  readonly bus?: Bus
  readonly logger?: Logger
}

/** The relay's topic subscriptions and fan-out; see the module comment. */
export class TopicHub {
  readonly #options: TopicHubOptions
  readonly #subscribers = new Map<string, Set<Caller>>()
  readonly #bySession = new Map<Caller, Set<string>>()
  readonly #seq = new Map<string, number>()
  /** Bus subscriptions, one per topic with a subscriber here. */
  readonly #remote = new Map<string, Unsubscribe>()

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
      this.#listen(topic)
    }
    set.add(caller)
  }

  /** Hands what other relays publish on `topic` to this relay's subscribers. */
  #listen(topic: string): void {
    const bus = this.#options.bus
    if (bus === undefined) return
    try {
      this.#remote.set(
        topic,
        bus.subscribeTopic(topic, (message) => {
          if (message.payload.length > this.#options.maxFrameBytes) return
          for (const subscriber of this.#subscribers.get(topic) ?? []) if (subscriber.isOpen) subscriber.sendFrame(message.payload)
        }),
      )
    } catch (error) {
      // The bus is closed (the relay is stopping): local delivery goes on.
      this.#options.logger?.warn({ err: error, topic: topic.slice(0, 256) }, 'cannot listen to a topic on the bus')
    }
  }

  /** Handles `topic-unsub` (a topic not subscribed is ignored). */
  unsubscribe(caller: Caller, topic: string): void {
    const mine = this.#bySession.get(caller)
    if (mine === undefined || !mine.delete(topic)) return
    if (mine.size === 0) this.#bySession.delete(caller)
    const set = this.#subscribers.get(topic)
    set?.delete(caller)
    if (set?.size === 0) {
      this.#subscribers.delete(topic)
      this.#remote.get(topic)?.()
      this.#remote.delete(topic)
    }
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
    // Published in the session's frame order, which the bus keeps on every relay.
    this.#options.bus?.publishTopic({ topic: message.topic, publisher: caller.replicaId, seq, payload: frame }).catch((error: unknown) => {
      this.#options.logger?.warn({ err: error, topic: message.topic.slice(0, 256) }, 'a topic message reached this relay only: the bus refused it')
    })
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
