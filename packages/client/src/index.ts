/**
 * `@outpost/client`: the SDK a web app imports. See the package README for an example.
 *
 * @module @outpost/client
 */
export { createClient, DEFAULT_TIMEOUT_MS } from './client'
export type { ClientOptions, MapOptions, MapSearchOption, PlainMapOptions, OutpostClient } from './client'
export type { LwwMap, LiveQuery, LiveSearch, Row, SearchHit } from './lww-map'
export type { SearchDeclaration, SearchOptions } from '@outpost/core'
export type { OrMap } from './or-map'
export type { Counter } from './counter'
export type { Topic, PublishResult, TopicMessageInfo } from './topic'
export type { Presence, PresenceMember, PresenceOptions } from './presence'
export { PRESENCE_HEARTBEAT_MS, PRESENCE_TIMEOUT_MS } from './presence'
export type { LockHandle, Lease, LeaseLost, AcquireOptions } from './lock'
export { DEFAULT_LOCK_TTL_MS } from './lock'
export type { LeaseLostReason, LockStatus } from '@outpost/worker'
export type { ShapeHandle } from './shape'
export type { ClientInspector, ClientInspectorSnapshot, InspectedPresence } from './inspector'
export type {
  Bounded,
  ConnectionTransition,
  InspectedMap,
  InspectedRejection,
  InspectedShape,
  InspectedTopic,
  InspectedWrite,
  InspectorSnapshot,
  ShapeSyncState,
} from '@outpost/worker'
export type { ClientStatus, StatusStore } from './status'
export type { Live } from './live-store'
export type { WriteHandle, WriteProgress } from './write-handle'
export type { RecordSchema, SchemaIssue } from './schema'
export { defineSchemas, SCHEMA_VERSION_FIELD } from '@outpost/core'
export type { MapSchema, Migration, SchemaInput, SchemaOutput, SchemaSet } from '@outpost/core'
export { detectMode } from './runtime/detect-mode'
export { sharedWorkerName, leaderLockName, WORKER_VERSION } from './runtime/names'
export type { ConnectionState, EngineStatus, RuntimeMode, WriteConcern } from '@outpost/worker'
export {
  OutpostError,
  SchemaValidationError,
  SchemaOutdatedError,
  TimeoutError,
  WorkerUnavailableError,
  QuotaExceededError,
  DatabaseLockedError,
  OfflineError,
  InvalidValueError,
  InvalidKeyError,
  PredicateError,
  QueryError,
  ForbiddenError,
  AuthError,
  TokenExpiredError,
  LockError,
  ProcessorError,
  NotFoundError,
  SearchNotDeclaredError,
  UnknownSearchFieldError,
  EmptySearchError,
  SearchIndexFullError,
  hasSearchWord,
  SEARCH_LIMITS,
} from '@outpost/core'
export type { ErrorCode, Predicate, OrderBy, Query, Shape, RecordValue, Value } from '@outpost/core'
