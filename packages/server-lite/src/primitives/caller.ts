/** The session as the coordination primitives see it (topics, locks, entry processors). */
import type { ServerMessage } from '@outpost/core'
import type { Principal } from '../auth/jwt'

/** One open client session, reduced to what topics, locks and processors need. */
export interface Caller {
  /** The session's random id (logs). */
  readonly id: string
  /** The replica id bound to the session at hello. */
  readonly replicaId: string
  /** Who the session authenticated as. */
  readonly principal: Principal
  /** False once the session closed: nothing sent to it arrives. */
  readonly isOpen: boolean
  /** Sends one server message. */
  send(message: ServerMessage): void
  /** Sends a frame encoded once for many recipients (topic fan-out). */
  sendFrame(frame: Uint8Array): void
}
