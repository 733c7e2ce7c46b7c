/**
 * `@outpost/client`: the SDK a web app imports. See the package README for an example.
 */
export { createClient, DEFAULT_TIMEOUT_MS } from './client'
export type { ClientOptions, MapOptions, OutpostClient } from './client'
export type { LwwMap, LiveQuery, Row } from './lww-map'
export type { OrMap } from './or-map'
export type { Counter } from './counter'
export type { ShapeHandle } from './shape'
export type { ClientStatus, StatusStore } from './status'
export type { Live } from './live-store'
export type { WriteHandle, WriteProgress } from './write-handle'
export type { RecordSchema, SchemaIssue } from './schema'
export { detectMode } from './runtime/detect-mode'
export { sharedWorkerName, leaderLockName, WORKER_VERSION } from './runtime/names'
export type { ConnectionState, EngineStatus, RuntimeMode, WriteConcern } from '@outpost/worker'
export {
  OutpostError,
  SchemaValidationError,
  TimeoutError,
  WorkerUnavailableError,
  QuotaExceededError,
  OfflineError,
  InvalidValueError,
  InvalidKeyError,
  PredicateError,
  QueryError,
  ForbiddenError,
  AuthError,
  TokenExpiredError,
} from '@outpost/core'
export type { ErrorCode, Predicate, OrderBy, Query, Shape, RecordValue, Value } from '@outpost/core'
