/**
 * Frame dispatch of an open session: every client message other than `hello` and `ops`
 * (those start the handshake, `handshake.ts`, and the write path, `writes.ts`), handed to
 * the part that answers it: subscriptions (`subscriptions.ts`), topics, locks and entry
 * processors (`primitives/`). Runs in order on the session's lane: the lane waits for it.
 */
import { InternalError, InvalidMessageError, isOutpostError, serializeError, type ClientMessage, type ServerMessage } from '@outpost/core'
import type { MapAccess } from '../auth/rules'
import type { Caller } from '../primitives/caller'
import type { RelayContext } from '../relay-context'
import type { Subscriptions } from './subscriptions'

/** What dispatch needs from its session. */
export interface DispatchHost {
  readonly context: RelayContext
  /** The session, as the primitives see it. */
  readonly caller: Caller
  /** The session's id, for logs. */
  readonly id: string
  readonly subscriptions: Subscriptions
  send(message: ServerMessage): void
  /** Takes `count` from the rate limits; when over one, answers RATE_LIMITED for `ref` and returns true. */
  limited(ref: number, count: number): boolean
  access(map: string): MapAccess
}

/** Handles a message other than `ops` and `hello` (in order: the lane waits for it). */
export async function dispatch(host: DispatchHost, message: Exclude<ClientMessage, { type: 'ops' }>): Promise<void> {
  switch (message.type) {
    case 'hello':
      host.send({ type: 'error', error: serializeError(new InvalidMessageError('hello was already received on this session')) })
      return
    case 'ping':
      host.send({ type: 'pong', clientTime: message.clientTime, serverTime: host.context.now() })
      return
    case 'credit':
      host.subscriptions.credit(message.bytes)
      return
    case 'subscribe':
      await host.subscriptions.subscribe(message)
      return
    case 'unsubscribe':
      host.subscriptions.unsubscribe(message.sub)
      return
    case 'reconcile':
      await host.subscriptions.reconcile(message)
      return
    case 'entries':
      await host.subscriptions.entries(message)
      return
    case 'topic-sub':
      host.context.topics.subscribe(host.caller, message.topic)
      return
    case 'topic-unsub':
      host.context.topics.unsubscribe(host.caller, message.topic)
      return
    case 'topic-pub':
      if (host.limited(message.id, 1)) return
      host.context.topics.publish(host.caller, message)
      return
    case 'lock-acquire':
      // Not awaited: a waiting acquire must not hold up this session's other frames.
      void host.context.locks.acquire(host.caller, message).catch((error: unknown) => failRequest(host, message.id, error))
      return
    case 'lock-extend':
      void host.context.locks.extend(host.caller, message).catch((error: unknown) => failRequest(host, message.id, error))
      return
    case 'lock-release':
      await host.context.locks.release(host.caller, message).catch((error: unknown) => failRequest(host, message.id, error))
      return
    case 'lock-check':
      await host.context.locks.check(host.caller, message).catch((error: unknown) => failRequest(host, message.id, error))
      return
    case 'invoke':
      if (host.limited(message.id, 1)) return
      await host.context.functions.invoke(host.caller, host.access(message.map), message).catch((error: unknown) => failRequest(host, message.id, error))
      return
  }
}

/** Answers request `ref` with an error (a failure outside the frame chain, e.g. the store while loading a lock). */
function failRequest(host: DispatchHost, ref: number, error: unknown): void {
  if (!isOutpostError(error)) host.context.logger.error({ err: error, session: host.id }, 'unexpected error while handling a request')
  host.send({ type: 'error', ref, error: serializeError(isOutpostError(error) ? error : new InternalError('The relay failed to handle this request; it has been logged')) })
}
