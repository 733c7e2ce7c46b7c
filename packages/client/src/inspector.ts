/**
 * `client.inspector`: the engine's read-only inspector as this tab sees it — the engine's
 * {@link InspectorSnapshot} (maps, shapes, outbox, connection, locks, topics, runtime)
 * plus the presence rooms this tab joined, with the members it sees. Reading it changes
 * nothing in the engine. `@outpost/client/devtools` renders it as an in-page panel.
 */
import type { OutpostError } from '@outpost/core'
import type { InspectorSnapshot } from '@outpost/worker'
import type { EngineSession, TrackedHandle } from './engine/session'
import { reportListenerError } from './engine/transport'
import type { Presence, PresenceMember } from './presence'

/** One presence room this tab joined. */
export interface InspectedPresence {
  readonly room: string
  /** This tab's member id in the room. */
  readonly self: string
  readonly members: readonly PresenceMember<unknown>[]
}

/** What `client.inspector` reports: the engine's snapshot plus this tab's presence rooms. */
export interface ClientInspectorSnapshot extends InspectorSnapshot {
  readonly presence: readonly InspectedPresence[]
}

/** Read-only access to the engine's state, for developer tools. */
export interface ClientInspector {
  /** A snapshot now. */
  snapshot(): Promise<ClientInspectorSnapshot>
  /**
   * Calls `listener` with a snapshot at once and again after changes (throttled in the
   * engine, and when a presence room's members change). `onError` gets a typed error if
   * the subscription fails (default: the client's `onError`). Returns the unsubscribe function.
   */
  subscribe(listener: (snapshot: ClientInspectorSnapshot) => void, onError?: (error: OutpostError) => void): () => void
}

/** Builds `client.inspector` over a session and this tab's presence handles. @internal */
export function createInspector(session: EngineSession, presences: () => Iterable<Presence<object>>): ClientInspector {
  const presenceOf = (): InspectedPresence[] =>
    [...presences()].map((p) => ({ room: p.room, self: p.id, members: p.members.getSnapshot() ?? [] }))
  return {
    async snapshot() {
      return { ...(await session.call('inspect')), presence: presenceOf() }
    },
    subscribe(listener, onError) {
      let last: InspectorSnapshot | undefined
      const emit = (): void => {
        if (last === undefined) return
        try {
          listener({ ...last, presence: presenceOf() })
        } catch (error) {
          reportListenerError(error)
        }
      }
      // Members change between engine pushes (heartbeats, joins): re-emit with the last snapshot.
      const unwatch = [...presences()].map((p) => p.members.subscribe(emit))
      const handle: TrackedHandle = session.track<number>({
        start: (isCurrent) =>
          session.call('subscribeInspector', (snapshot: InspectorSnapshot) => {
            if (!isCurrent()) return
            last = snapshot
            emit()
          }),
        stop: (id) => session.call('unsubscribeInspector', id),
        ...(onError === undefined ? {} : { onError }),
      })
      return () => {
        handle.close()
        for (const stop of unwatch) stop()
      }
    },
  }
}
