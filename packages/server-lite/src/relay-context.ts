/** What a {@link Session} needs from its relay: configuration, services and session bookkeeping. */
import type { Hlc } from '@outpost/core'
import type { Logger } from 'pino'
import type { Authenticator } from './auth/jwt'
import type { RuleSet } from './auth/rules'
import type { RelayConfig } from './config'
import type { RelayMetrics } from './metrics'
import type { Session } from './session'
import type { SyncService } from './sync/sync-service'

/** The relay as its sessions see it. */
export interface RelayContext {
  readonly config: RelayConfig
  readonly logger: Logger
  readonly metrics: RelayMetrics
  readonly auth: Authenticator
  readonly rules: RuleSet
  readonly sync: SyncService
  /** The relay's clock: drift checks of incoming stamps. */
  readonly clock: Hlc
  /** The relay's wall clock (ms). */
  readonly now: () => number
  /** Counts a new authenticated connection of `subject`; false when the subject is at its limit. */
  admit(session: Session, subject: string): boolean
  /** Called once when a session ends; `subject` is set when it had been admitted. */
  sessionClosed(session: Session, subject: string | undefined): void
}
