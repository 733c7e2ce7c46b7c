/**
 * `client.shape(shape)`: asks the engine to replicate a slice of a map from the relay. The
 * subscription is persisted by the engine (it survives reloads) until `close()`.
 */
import type { Shape } from '@outpost/core'
import type { EngineSession } from './engine/session'

/** A replicated slice of a map. */
export interface ShapeHandle {
  /** The shape as given. */
  readonly shape: Shape
  /** Resolves with the engine's id for the shape once it is registered (rejects on an invalid shape). */
  readonly id: Promise<string>
  /** Stops replicating the shape; the local copies of its records are dropped by the engine. */
  close(): Promise<void>
}

/** Registers the shape (see `client.shape`). */
export function createShape(session: EngineSession, shape: Shape): ShapeHandle {
  const id = session.call('subscribeShape', shape)
  // The caller sees a failure through `id` or `close()`; this only keeps an unread failure from being "unhandled".
  id.catch(ignoreUnread)
  let closed: Promise<void> | undefined
  return {
    shape,
    id,
    close: () => (closed ??= id.then((shapeId) => session.call('unsubscribeShape', shapeId))),
  }
}

function ignoreUnread(_error: unknown): void {}
