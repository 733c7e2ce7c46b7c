/**
 * `client.presence(room, state)`: who is here, built on a topic (`presence:<room>`).
 *
 *   join  {id, state}  on start, and again each time the connection to the relay becomes
 *                      live (a reloaded tab whose worker restarted, a device back online):
 *                      every member answers `here`, so other devices see it at once
 *   here  {id, state}  every `heartbeatMs`, and on `update(state)`
 *   leave {id}         on `leave()`, `client.close()` and `pagehide` (a reload or a closed
 *                      tab leaves at once, so nobody counts it twice or keeps showing it)
 *
 * A member not heard from for `timeoutMs` (three missed heartbeats by default) is
 * dropped, so a tab that crashed or a device that vanished (lost its network, slept)
 * disappears on its own: within `timeoutMs` plus one sweep (`timeoutMs / 3`), 20 s by default.
 * Other tabs of this browser are members too (the engine fans the topic out locally, also
 * offline); other devices come through the relay.
 */
import type { OutpostError, Value } from '@outpost/core'
import { reportListenerError } from './engine/transport'
import type { Live } from './live-store'
import type { PublishResult, TopicMessageInfo } from './topic'

/** The topic operations presence runs on. @internal */
export interface PresenceChannel {
  publish(message: Value): Promise<PublishResult>
  subscribe(listener: (message: Value, info: TopicMessageInfo) => void, onError: (error: OutpostError) => void, onStarted: () => void): () => void
  /** Calls `listener` each time the connection to the relay becomes live; returns its remover. */
  onLive?(listener: () => void): () => void
}

/** Default interval between heartbeats (ms). */
export const PRESENCE_HEARTBEAT_MS = 5_000
/** Default silence after which a member is dropped (ms). */
export const PRESENCE_TIMEOUT_MS = 15_000

/** One member of a presence room. */
export interface PresenceMember<S> {
  /** Stable for the life of that member's `presence()` handle. */
  readonly id: string
  /** True for this handle's own entry. */
  readonly self: boolean
  /** The member's published state (at least what it joined with). */
  readonly state: S
  /** When it was last heard from (ms since epoch, this device's clock). */
  readonly lastSeen: number
}

/** Options of `client.presence`. */
export interface PresenceOptions {
  /** Interval between heartbeats (ms, default 5 s). */
  readonly heartbeatMs?: number
  /** Silence after which a member is dropped (ms, default 15 s). */
  readonly timeoutMs?: number
  /** Clock (ms), injectable for tests. */
  readonly now?: () => number
  /** Called with a typed error when the presence topic is refused or a heartbeat cannot be published. */
  readonly onError?: (error: OutpostError) => void
}

/** A presence handle: this member's state and the live member list. */
export interface Presence<S> {
  /** The room's name. */
  readonly room: string
  /** This member's id. */
  readonly id: string
  /** The members (this one first, then by arrival): `subscribe` for changes, `getSnapshot` for now. */
  readonly members: Live<readonly PresenceMember<S>[]>
  /** Replaces this member's state (merged over the current one) and announces it. */
  update(state: Partial<S>): Promise<void>
  /** Leaves the room (announced to the others) and stops heartbeats. Idempotent. */
  leave(): Promise<void>
}

type Wire = { readonly kind: 'join' | 'here'; readonly id: string; readonly state: Value } | { readonly kind: 'leave'; readonly id: string }

function isWire(value: unknown): value is Wire {
  if (typeof value !== 'object' || value === null) return false
  const v = value as { kind?: unknown; id?: unknown }
  return (v.kind === 'join' || v.kind === 'here' || v.kind === 'leave') && typeof v.id === 'string'
}

/** Builds a presence handle over `topic` (see `client.presence`). `onClose` is called once it has left. */
export function createPresence<S extends object>(room: string, topic: PresenceChannel, initial: S, id: string, options: PresenceOptions, onClose: () => void): Presence<S> {
  const now = options.now ?? Date.now
  const heartbeatMs = options.heartbeatMs ?? PRESENCE_HEARTBEAT_MS
  const timeoutMs = options.timeoutMs ?? PRESENCE_TIMEOUT_MS
  let state: S = initial
  let left = false
  const others = new Map<string, PresenceMember<S>>()
  const listeners = new Set<(members: readonly PresenceMember<S>[]) => void>()
  let snapshot: readonly PresenceMember<S>[] = []

  const report = (error: OutpostError): void => (options.onError ? options.onError(error) : reportListenerError(error))

  const rebuild = (): void => {
    snapshot = left ? [] : [{ id, self: true, state, lastSeen: now() }, ...others.values()]
    for (const listener of [...listeners]) {
      try {
        listener(snapshot)
      } catch (error) {
        reportListenerError(error)
      }
    }
  }

  const send = (message: Wire): Promise<void> =>
    topic.publish(message as unknown as Value).then(
      () => undefined,
      (error: OutpostError) => report(error),
    )

  const announce = (kind: 'join' | 'here'): Promise<void> => send({ kind, id, state: state as unknown as Value })

  const stopListening = topic.subscribe(
    (message) => {
      if (left || !isWire(message) || message.id === id) return
      if (message.kind === 'leave') {
        if (others.delete(message.id)) rebuild()
        return
      }
      const known = others.has(message.id)
      others.set(message.id, { id: message.id, self: false, state: message.state as unknown as S, lastSeen: now() })
      rebuild()
      // A newcomer learns who is here at once instead of waiting for the next heartbeats.
      if (message.kind === 'join' || !known) void announce('here')
    },
    (error) => report(error),
    // Announced once the subscription exists, so the members' answers are heard.
    () => void announce('join'),
  )

  const expire = (): void => {
    const cutoff = now() - timeoutMs
    let changed = false
    for (const [memberId, member] of others) {
      if (member.lastSeen < cutoff) {
        others.delete(memberId)
        changed = true
      }
    }
    if (changed) rebuild()
  }

  const timer = setInterval(() => {
    expire()
    void announce('here')
  }, heartbeatMs)
  // A shorter sweep than the heartbeat keeps expiry close to `timeoutMs`.
  const sweep = setInterval(expire, Math.max(50, Math.min(heartbeatMs, Math.floor(timeoutMs / 3))))

  // A join sent while the relay was unreachable reached only this browser's tabs: say it again once it is reachable.
  const stopLive = topic.onLive?.(() => {
    if (!left) void announce('join')
  })

  const onPageHide = (): void => void leave()
  globalThis.addEventListener?.('pagehide', onPageHide)

  async function leave(): Promise<void> {
    if (left) return
    left = true
    clearInterval(timer)
    clearInterval(sweep)
    stopLive?.()
    globalThis.removeEventListener?.('pagehide', onPageHide)
    others.clear()
    rebuild()
    try {
      await send({ kind: 'leave', id })
    } finally {
      stopListening()
      onClose()
    }
  }

  rebuild()

  return {
    room,
    id,
    members: {
      subscribe(listener) {
        listeners.add(listener)
        try {
          listener(snapshot)
        } catch (error) {
          reportListenerError(error)
        }
        return () => listeners.delete(listener)
      },
      getSnapshot: () => snapshot,
      // The member list itself cannot fail; refusals of the topic go to `onError`.
      getError: () => undefined,
      get: async () => snapshot,
    },
    async update(patch) {
      if (left) return
      state = { ...state, ...patch }
      rebuild()
      await announce('here')
    },
    leave,
  }
}
