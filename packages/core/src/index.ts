/**
 * @outpost/core: the pure logic shared by the browser worker and the relay — clocks,
 * CRDTs, Merkle trees, predicates and queries, the wire protocol and codec, errors, and
 * the store seam. No I/O, no DOM, no Node types.
 */
export { AuthError, ClockDriftError, ConfigError, DecodeError, DecodeLimitError, ForbiddenError, FrameTooLargeError, InternalError, InvalidKeyError, InvalidMessageError, InvalidValueError, LockError, NotFoundError, OfflineError, OutpostError, PredicateError, ProcessorError, ProtocolVersionError, QueryError, QuotaExceededError, RateLimitError, SchemaValidationError, ShuttingDownError, StoreClosedError, StoreError, TimeoutError, TokenExpiredError, TooManyConnectionsError, WorkerUnavailableError, deserializeError, isErrorCode, isOutpostError, serializeError } from './errors'
export type { ErrorCode, ErrorDetails, SerializedError } from './errors'
export type { Change, CollectionKind, CounterState, FieldEntry, LwwRecordState, OrSetState, RecordValue, ReplicaId, Stamp, Value } from './types'
export { VALUE_LIMITS, assertRecord, assertValue, compareValues, getField, recordFromEntries, valuesEqual } from './value'
export {
  Hlc,
  MAX_COUNTER,
  MAX_REPLICA_ID_LENGTH,
  MAX_WALL,
  compareStamps,
  decodeStamp,
  encodeStamp,
  isStamp,
  maxStamp
} from './clock'
export type {
  HlcOptions,
  StampParts
} from './clock'
export {
  CRDT_TYPES,
  CrdtMap,
  changeIsEmpty,
  counterAddState,
  counterEquals,
  counterIsEmpty,
  counterValue,
  emptyCounter,
  emptyLww,
  emptyOr,
  isAlive,
  isTombstone,
  lwwDeleteState,
  lwwEquals,
  lwwIsEmpty,
  lwwLatest,
  lwwMaxStamp,
  lwwSetState,
  lwwUpdateState,
  lwwView,
  mergeChange,
  mergeCounter,
  mergeLww,
  mergeOr,
  mergeState,
  orAddState,
  orEquals,
  orHas,
  orIsEmpty,
  orRemoveState,
  orValues,
  projectLww,
  stateEquals
} from './crdt'
export type {
  CrdtState,
  CrdtStates,
  CrdtType
} from './crdt'
export {
  DEFAULT_MERKLE_DEPTH,
  EMPTY_DIGEST,
  ENTRY_EXCHANGE_THRESHOLD,
  MAX_MERKLE_DEPTH,
  MerkleTree,
  changeDigest,
  counterDigest,
  diffChildren,
  diffEntries,
  digestFromParts,
  digestToParts,
  hash64,
  hash64Parts,
  isDigest,
  lwwDigest,
  needsEntryExchange,
  orDigest
} from './merkle'
export type {
  Digest,
  EntryDiff,
  MerkleTreeOptions
} from './merkle'
export {
  MATCH_ALL,
  MATCH_NONE,
  PREDICATE_LIMITS,
  QUERY_LIMITS,
  QueryView,
  andPredicates,
  bindClaims,
  canonicalValue,
  compareRows,
  compilePredicate,
  matches,
  projectRecord,
  readField,
  runQuery,
  shapeKey,
  validatePredicate,
  validateQuery,
  validateShape
} from './query'
export type {
  Claims,
  CompiledPredicate,
  FieldRef,
  OrderBy,
  Predicate,
  Query,
  Row,
  Shape
} from './query'
export {
  DEFAULT_CODEC_LIMITS,
  MESSAGE_LIMITS,
  PROTOCOL_VERSION,
  PROTOCOL_VERSIONS,
  ackSchema,
  changeSchema,
  changesSchema,
  clientMessageSchema,
  decode,
  decodeClientMessage,
  decodeServerMessage,
  encode,
  encodeMessage,
  entriesSchema,
  errorSchema,
  formatIssues,
  helloSchema,
  isAck,
  isChanges,
  isClientMessage,
  isEntries,
  isErrorMessage,
  isHello,
  isNodes,
  isOps,
  isPing,
  isPong,
  isPush,
  isReconcile,
  isResync,
  isServerMessage,
  isSubscribe,
  isSubscribed,
  isSynced,
  isUnsubscribe,
  isWelcome,
  merkleNodeSchema,
  negotiateVersion,
  nodesSchema,
  opsSchema,
  parseClientMessage,
  parseServerMessage,
  pingSchema,
  pongSchema,
  pushSchema,
  reconcileSchema,
  resyncSchema,
  scanFrame,
  serverMessageSchema,
  shapeSchema,
  subscribeSchema,
  subscribedSchema,
  syncedSchema,
  unsubscribeSchema,
  welcomeSchema
} from './protocol'
export type {
  AckMessage,
  ChangesMessage,
  ClientMessage,
  CodecLimits,
  EntriesMessage,
  ErrorMessage,
  HelloMessage,
  MerkleNodeInfo,
  MessageType,
  NodesMessage,
  OpsMessage,
  PingMessage,
  PongMessage,
  PushMessage,
  ReconcileMessage,
  ResyncMessage,
  ServerMessage,
  SubscribeMessage,
  SubscribedMessage,
  SyncedMessage,
  UnsubscribeMessage,
  WelcomeMessage
} from './protocol'
export {
  MemoryStore,
  cloneValue
} from './store'
export type {
  ScanOptions,
  Store,
  StoreBatch,
  StoreEntry
} from './store'
