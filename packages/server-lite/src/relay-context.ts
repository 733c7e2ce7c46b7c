/** What a {@link Session} needs from its relay: configuration, services and session bookkeeping. */
import type { Hlc } from '@outpost/core'
import type { Logger } from 'pino'
import type { Authenticator } from './auth/jwt'
import type { RuleSet } from './auth/rules'
import type { RelayConfig } from './config'
import type { ConnectionLog } from './connection-log'
import type { FairScheduler } from './fair-scheduler'
import type { RelayMetrics } from './metrics'
import type { FunctionService } from './primitives/functions'
import type { LockService } from './primitives/locks'
import type { TopicHub } from './primitives/topics'
import type { TokenBucket } from './rate-limiter'
import type { Session } from './session/session'
import type { SyncService } from './sync/sync-service'
import type { PipelineContext } from './sync/write-pipeline'

/** The relay as its sessions see it. */
export interface RelayContext {
  readonly config: RelayConfig
  readonly logger: Logger
  readonly metrics: RelayMetrics
  readonly auth: Authenticator
  readonly rules: RuleSet
  readonly sync: SyncService
  /** The write pipeline's view of the relay (clock, limits, rule fields, resolvers). */
  readonly pipeline: PipelineContext
  /** The relay's clock: drift checks of incoming stamps. */
  readonly clock: Hlc
  /** The relay's wall clock (ms). */
  readonly now: () => number
  /** Topic subscriptions and fan-out. */
  readonly topics: TopicHub
  /** Locks with leases and fencing tokens. */
  readonly locks: LockService
  /** Entry processors and conflict resolvers. */
  readonly functions: FunctionService
  /** The write-rate bucket shared by every connection of `subject`. */
  subjectBucket(subject: string): TokenBucket
  /** Serves the connections' work in turn (one lane per session). */
  readonly scheduler: FairScheduler
  /** Logs and counts each connection's open, refusal and close. */
  readonly connections: ConnectionLog
  /** Counts a new authenticated connection of `subject`; false when the subject is at its limit. */
  admit(session: Session, subject: string): boolean
  /** Called once when a session ends; `subject` is set when it had been admitted. */
  sessionClosed(session: Session, subject: string | undefined): void
}
