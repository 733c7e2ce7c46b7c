/**
 * `@outpost/worker`: the engine that owns the data in the browser, and its worker hosts.
 *
 * @module @outpost/worker
 */
export { createEngine, REMOTE_FLUSH_RECORDS, REMOTE_FLUSH_DELAY_MS, REMOTE_FLUSH_MAX_WAIT_MS } from './engine'
export type { CreateEngineOptions, Engine } from './engine'
export { exposeEngine, createTabApi, AUTH_PROVIDER_TIMEOUT_MS } from './expose'
export { ENGINE_METHODS, ENGINE_METHOD_NAMES, ENDING_METHODS, answerHandle, methodSpec } from './engine-methods'
export type { AnswerOf, EngineMethodName, MethodAnswer, MethodKind, MethodSignature, MethodSpec, MethodsOf } from './engine-methods'
export { startSharedWorker, startDedicatedWorker } from './shared-worker-host'
export type { SharedWorkerScopeLike, DedicatedWorkerScopeLike, HostEngineOptions } from './shared-worker-host'
export { IdbStore, PAGE_MAX_RECORDS } from './store/idb-store'
export type { IdbStoreOptions, IdbStoreStats } from './store/idb-store'
export { Outbox, OUTBOX_COLLECTION, outboxKey, isPermanentRejection } from './outbox'
export type { OutboxEntry } from './outbox'
export { transition, backoffDelay, CONNECTION_STATES, CONNECTION_EVENTS, BACKOFF_BASE_MS, BACKOFF_CAP_MS } from './sync/connection-state'
export type { ConnectionEvent, BackoffOptions } from './sync/connection-state'
export { SyncClient, DEFAULT_DEAD_MS } from './sync/sync-client'
export type { WebSocketLike, WebSocketConstructor, SyncHost, SyncClientOptions, SyncStats, ResumeMode } from './sync/sync-client'
export { ShapeReplica } from './sync/shape-replica'
export { INSPECTOR_LIMITS } from './inspector-api'
export type { Bounded, ConnectionTransition, InspectedMap, InspectedRejection, InspectedShape, InspectedTopic, InspectedWrite, InspectorSnapshot, ShapeSyncState } from './inspector-api'
export { SEARCH_PERSIST_DELAY_MS, SEARCH_PERSIST_MAX_WAIT_MS, searchCollectionOf } from './search/live-searches'
export type { SearchStats } from './search/live-searches'
export type { SearchDeclaration, SearchHit, SearchOptions, SearchSpec } from './search/search-types'
export { Coordinator, REQUEST_TIMEOUT_MS, LOCK_TTL_RANGE, LOCK_MAX_WAIT_MS } from './coordination/coordinator'
export type { CoordinatorHost } from './coordination/coordinator'
export type { RequestAnswer } from './sync/sync-client'
export type {
  ConnectionState,
  EngineApi,
  EngineHostApi,
  EngineInitOptions,
  EngineOptions,
  EngineStatus,
  LeaseInfo,
  LeaseLostReason,
  LockStatus,
  PublishReceipt,
  QuerySpec,
  TopicEvent,
  Result,
  Row,
  RuntimeMode,
  RejectedStatus,
  WriteConcern,
  WriteReceipt,
  WriteRejection,
} from './engine-api'
