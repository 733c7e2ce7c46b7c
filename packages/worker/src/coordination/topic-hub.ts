/**
 * The engine's topic subscriptions. Every tab's subscription lives here; the relay sees
 * one `topic-sub` per topic however many tabs listen, sent when the first subscription
 * of a topic opens (and again after every reconnect) and withdrawn with the last one.
 *
 * A publication reaches this engine's other clients straight from here (so tabs hear
 * each other while offline) and other browsers through the relay, which never echoes a
 * message back to the session that published it.
 */
import type { SerializedError, Value } from '@outpost/core'
import type { TopicEvent } from '../engine-api'

interface TopicSubscription {
  readonly topic: string
  /** The subscribing client: its own publications are not delivered to it. */
  readonly client: string
  readonly onEvent: (event: TopicEvent) => void
}

/** Where the hub delivers; a failing callback must not stop the others (the engine passes a guarded caller). */
export type Deliver = (onEvent: (event: TopicEvent) => void, event: TopicEvent) => void

/** Local topic subscriptions, grouped by topic. */
export class TopicHub {
  readonly #byId = new Map<number, TopicSubscription>()
  readonly #byTopic = new Map<string, Set<number>>()
  readonly #deliver: Deliver

  constructor(deliver: Deliver) {
    this.#deliver = deliver
  }

  /** Adds a subscription; returns true when it is the topic's first (the relay must be told). */
  add(id: number, topic: string, client: string, onEvent: (event: TopicEvent) => void): boolean {
    this.#byId.set(id, { topic, client, onEvent })
    let ids = this.#byTopic.get(topic)
    const first = ids === undefined
    if (ids === undefined) this.#byTopic.set(topic, (ids = new Set()))
    ids.add(id)
    return first
  }

  /** Removes a subscription; returns its topic when it was the last one (the relay must be told), else undefined. */
  remove(id: number): string | undefined {
    const sub = this.#byId.get(id)
    if (sub === undefined) return undefined
    this.#byId.delete(id)
    const ids = this.#byTopic.get(sub.topic)
    ids?.delete(id)
    if (ids !== undefined && ids.size === 0) {
      this.#byTopic.delete(sub.topic)
      return sub.topic
    }
    return undefined
  }

  /** Topics with at least one subscription (re-subscribed on the relay after a reconnect). */
  topics(): string[] {
    return [...this.#byTopic.keys()]
  }

  /** Each topic with its number of subscriptions (for the inspector). */
  counts(): { topic: string; subscribers: number }[] {
    return [...this.#byTopic].map(([topic, ids]) => ({ topic, subscribers: ids.size }))
  }

  /** Delivers a publication of `client` to every other client's subscription of `topic`; returns how many got it. */
  publishLocal(topic: string, client: string, data: Value, from: string): number {
    let delivered = 0
    for (const id of this.#byTopic.get(topic) ?? []) {
      const sub = this.#byId.get(id)
      if (sub === undefined || sub.client === client) continue
      // Each subscriber gets its own copy: in-page callbacks must not share a mutable object.
      this.#deliver(sub.onEvent, { type: 'message', topic, data: structuredClone(data), from, local: true })
      delivered++
    }
    return delivered
  }

  /** Delivers a message that came through the relay to every subscription of its topic. */
  deliverRemote(topic: string, data: Value, from: string): void {
    for (const id of this.#byTopic.get(topic) ?? []) {
      const sub = this.#byId.get(id)
      if (sub !== undefined) this.#deliver(sub.onEvent, { type: 'message', topic, data, from, local: false })
    }
  }

  /** Tells every subscription of `topic` that the relay refused it. */
  refuse(topic: string, error: SerializedError): boolean {
    const ids = this.#byTopic.get(topic)
    if (ids === undefined) return false
    for (const id of ids) {
      const sub = this.#byId.get(id)
      if (sub !== undefined) this.#deliver(sub.onEvent, { type: 'error', topic, error })
    }
    return true
  }

  /** Drops every subscription (engine close). */
  clear(): void {
    this.#byId.clear()
    this.#byTopic.clear()
  }
}
