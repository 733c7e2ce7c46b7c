/**
 * The hello handshake, before a session is open: protocol version, schema versions, token, and the replica
 * id the relay keeps for itself. Admission (connections per subject) and binding the replica
 * to the subject follow in the session, which holds the connection slot. Also the token's
 * lifetime: an open session is closed when the token it said hello with expires.
 */
import { AuthError, ForbiddenError, checkSchemaVersions, TokenExpiredError, negotiateVersion, type HelloMessage, type OutpostError, type WelcomeMessage, type WireLimits } from '@outpost/core'
import type { Principal } from '../auth/jwt'
import { CLOSE } from '../connection-log'
import type { RelayContext } from '../relay-context'

/** What a hello earns: a version and a principal, or a typed refusal with its close code. */
export type HelloVerdict = { readonly ok: true; readonly version: number; readonly principal: Principal } | { readonly ok: false; readonly error: OutpostError; readonly code: number }

/** Checks a hello (version, token, replica id); see the module comment. */
export async function acceptHello(context: RelayContext, message: HelloMessage): Promise<HelloVerdict> {
  let version: number
  try {
    version = negotiateVersion(message.versions)
  } catch (error) {
    return { ok: false, error: error as OutpostError, code: CLOSE.PROTOCOL_VERSION }
  }
  // Before the token: versions that differ are refused alike for everyone, and say which side to upgrade.
  const outdated = context.pipeline.schemas === undefined ? undefined : checkSchemaVersions(message.schemas, context.pipeline.schemas.schemas)
  if (outdated !== undefined) return { ok: false, error: outdated, code: CLOSE.SCHEMA_OUTDATED }
  let principal: Principal
  try {
    principal = await context.auth.authenticate(message.token)
  } catch (error) {
    if (error instanceof TokenExpiredError) return { ok: false, error, code: CLOSE.TOKEN_EXPIRED }
    if (error instanceof AuthError) return { ok: false, error, code: CLOSE.UNAUTHENTICATED }
    throw error
  }
  // The relay stamps its own writes (entry processors, resolvers) with this id: nobody else may.
  if (message.replicaId === context.functions.replicaId) {
    return { ok: false, error: new ForbiddenError(`Replica id ${message.replicaId.slice(0, 64)} is the relay's own; each device database must use its own replica id`), code: CLOSE.FORBIDDEN }
  }
  return { ok: true, version, principal }
}

/** The `welcome` for an accepted hello. */
export function welcomeFor(context: RelayContext, message: HelloMessage, version: number, limits: WireLimits): WelcomeMessage {
  const now = context.now()
  const horizonMs = context.config.tombstoneHorizonMs
  return {
    type: 'welcome',
    version,
    serverTime: now,
    replicaId: message.replicaId,
    horizonMs,
    resync: message.lastSyncAt !== undefined && now - message.lastSyncAt > horizonMs,
    limits,
    cursorWithoutRoot: true,
  }
}

/** setTimeout's largest delay. */
const MAX_TIMER_MS = 2 ** 31 - 1

/** The timer that ends a session when its token expires. */
export class TokenExpiry {
  #timer: ReturnType<typeof setTimeout> | undefined

  /** Calls `expired` once `now()` reaches `expiresAt` (nothing for a token without expiry; re-armed past setTimeout's limit). */
  arm(now: () => number, expiresAt: number | null | undefined, expired: () => void): void {
    if (expiresAt === null || expiresAt === undefined) return
    const delay = expiresAt - now()
    this.#timer = setTimeout(
      () => {
        if (now() < expiresAt) {
          this.arm(now, expiresAt, expired)
          return
        }
        expired()
      },
      Math.min(Math.max(delay, 0), MAX_TIMER_MS),
    )
    this.#timer.unref?.()
  }

  /** Stops the timer (the session closed). */
  clear(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
  }
}
