/**
 * `client.topic(name)`: ephemeral pub/sub. A message reaches every subscriber at the
 * moment it is published: other tabs of this browser straight from the engine (also
 * offline), other browsers through the relay. Nothing is stored or queued: a message
 * published while the relay is unreachable is delivered locally and reported as
 * `remote: 'not-sent'`. One publisher's messages arrive in the order it sent them.
 */
import { deserializeError, type OutpostError, type Value } from '@outpost/core'
import type { PublishReceipt, TopicEvent } from '@outpost/worker'
import type { EngineSession } from './engine/session'
import { reportListenerError } from './engine/transport'

/** What `publish` reports: local deliveries, and whether the relay took the message. */
export type PublishResult = PublishReceipt

/** Where a received message came from. */
export interface TopicMessageInfo {
  /** The publishing browser's replica id (all tabs of one browser share it). */
  readonly from: string
  /** True when another tab of this browser published it, false when it came through the relay. */
  readonly local: boolean
}

/** A named topic carrying messages of type `T` (any value Outpost can send). */
export interface Topic<T = Value> {
  /** The topic's name (the relay's rules match it, e.g. `room:*`). */
  readonly name: string
  /**
   * Publishes `message` to every other subscriber. Resolves with how many local
   * subscribers got it and whether the relay delivered it (`'not-sent'` offline).
   * Rejects with `ForbiddenError` when the relay's rules deny publishing here, and
   * `InvalidValueError` for a message Outpost cannot send (a function, a cycle).
   */
  publish(message: T): Promise<PublishResult>
  /**
   * Calls `listener` for every message other clients publish from now on (a client
   * does not hear its own messages). `onError` gets a typed error when the subscription
   * is refused (e.g. `ForbiddenError` from the relay's rules). Survives reconnects and
   * worker restarts. Returns the unsubscribe function.
   */
  subscribe(listener: (message: T, info: TopicMessageInfo) => void, onError?: (error: OutpostError) => void): () => void
}

/** Builds a topic handle (see `client.topic`). `clientId` keeps this client's own messages from echoing back to it. */
export function createTopic<T>(session: EngineSession, clientId: string, name: string): Topic<T> {
  return {
    name,
    publish: (message) => session.call('publishTopic', name, clientId, message as Value),
    subscribe: (listener, onError) => subscribeTopic(session, clientId, name, listener, onError),
  }
}

/**
 * Subscribes to a topic; `onStarted` runs each time the engine subscription is made
 * (first, and again after a worker restart), e.g. for presence to announce itself once
 * it can hear the answers. @internal
 */
export function subscribeTopic<T>(
  session: EngineSession,
  clientId: string,
  name: string,
  listener: (message: T, info: TopicMessageInfo) => void,
  onError?: (error: OutpostError) => void,
  onStarted?: () => void,
): () => void {
  const fail = (error: OutpostError): void => (onError ? onError(error) : session.reportUnhandled(error))
  const handle = session.track<number>({
    start: async (isCurrent) => {
      const id = await session.call('subscribeTopic', name, clientId, (event: TopicEvent) => {
        if (!isCurrent()) return
        try {
          if (event.type === 'message') listener(event.data as T, { from: event.from, local: event.local })
          else fail(deserializeError(event.error))
        } catch (error) {
          reportListenerError(error)
        }
      })
      if (isCurrent()) onStarted?.()
      return id
    },
    stop: (id) => session.call('unsubscribeTopic', id),
    onError: fail,
  })
  return () => handle.close()
}
