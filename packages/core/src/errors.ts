/**
 * Outpost's errors: one root class with a stable `code`, one named subclass per kind of
 * failure, and messages that say what to do next.
 *
 * Errors cross two boundaries: the worker boundary (comlink keeps only
 * message/name/stack) and the wire. Both go through {@link serializeError} and
 * {@link deserializeError}, which rebuild the right subclass from its `code`, so
 * `err instanceof QuotaExceededError` and `err.code` hold in the tab exactly as they do
 * in the worker.
 */
import { printable } from './unicode'

/** Every stable error code Outpost raises. Codes never change meaning once shipped. */
export type ErrorCode =
  | 'CLOCK_DRIFT'
  | 'INVALID_VALUE'
  | 'VALUE_TOO_LARGE'
  | 'INVALID_KEY'
  | 'INVALID_PREDICATE'
  | 'INVALID_QUERY'
  | 'SCHEMA_VALIDATION'
  | 'SCHEMA_OUTDATED'
  | 'FRAME_TOO_LARGE'
  | 'DECODE_LIMIT'
  | 'DECODE_FAILED'
  | 'INVALID_MESSAGE'
  | 'PROTOCOL_VERSION'
  | 'UNAUTHENTICATED'
  | 'TOKEN_EXPIRED'
  | 'FORBIDDEN'
  | 'RATE_LIMITED'
  | 'TOO_MANY_CONNECTIONS'
  | 'STORE_FAILED'
  | 'STORE_CLOSED'
  | 'DATABASE_LOCKED'
  | 'BUS_FAILED'
  | 'BUS_CLOSED'
  | 'QUOTA_EXCEEDED'
  | 'TIMEOUT'
  | 'WORKER_UNAVAILABLE'
  | 'OFFLINE'
  | 'LOCK_FAILED'
  | 'PROCESSOR_FAILED'
  | 'NOT_FOUND'
  | 'CONFIG_INVALID'
  | 'SHUTTING_DOWN'
  | 'SEARCH_NOT_DECLARED'
  | 'SEARCH_UNKNOWN_FIELD'
  | 'SEARCH_EMPTY_QUERY'
  | 'SEARCH_INDEX_FULL'
  | 'INTERNAL'

/** Extra, structured facts about an error (all values must survive msgpack and structured clone). */
export type ErrorDetails = Readonly<Record<string, unknown>>

/** The root of every error Outpost raises on purpose. `code` is stable; `message` says what to do. */
export class OutpostError extends Error {
  /**
   * The class name, written out in every class: a minifier renames classes, so
   * `constructor.name` would read `_e` in a production build.
   */
  override readonly name: string = 'OutpostError'
  readonly code: ErrorCode
  readonly details: ErrorDetails | undefined

  constructor(code: ErrorCode, message: string, details?: ErrorDetails, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.details = details
  }
}

/**
 * A remote HLC stamp was too far ahead of this replica's clock, or its counter was out of
 * range. `receiverTime` is the receiver's wall clock (ms) so an honest sender with a wrong
 * clock can correct its offset instead of being locked out.
 */
export class ClockDriftError extends OutpostError {
  override readonly name = 'ClockDriftError'
  readonly receiverTime: number
  constructor(message: string, receiverTime: number, details?: ErrorDetails) {
    super('CLOCK_DRIFT', message, { ...details, receiverTime })
    this.receiverTime = receiverTime
  }
}

/** A record, field value or key that Outpost cannot store or send (e.g. a function, `undefined` at top level, a cycle). */
export class InvalidValueError extends OutpostError {
  override readonly name = 'InvalidValueError'
  constructor(message: string, details?: ErrorDetails) {
    super('INVALID_VALUE', message, details)
  }
}

/**
 * A write whose change, or the record it would produce, could never be sent or stored
 * within the relay's limits (frame bytes, elements per frame). Nothing was stored.
 * `details` names the limit (`limitBytes` or `limitElements`) and the size found.
 */
export class ValueTooLargeError extends OutpostError {
  override readonly name = 'ValueTooLargeError'
  constructor(message: string, details?: ErrorDetails) {
    super('VALUE_TOO_LARGE', message, details)
  }
}

/** A key that is not a string, or is longer than the limit. */
export class InvalidKeyError extends OutpostError {
  override readonly name = 'InvalidKeyError'
  constructor(message: string, details?: ErrorDetails) {
    super('INVALID_KEY', message, details)
  }
}

/** A malformed `where` predicate; `details.path` points at the offending node (e.g. `and[1].eq`). */
export class PredicateError extends OutpostError {
  override readonly name = 'PredicateError'
  constructor(message: string, details?: ErrorDetails) {
    super('INVALID_PREDICATE', message, details)
  }
}

/** A malformed query or shape (`orderBy`, `limit`, `fields`, `map`). */
export class QueryError extends OutpostError {
  override readonly name = 'QueryError'
  constructor(message: string, details?: ErrorDetails) {
    super('INVALID_QUERY', message, details)
  }
}

/** A write rejected by the map's Standard Schema validator before anything was stored. `details.issues` lists why. */
export class SchemaValidationError extends OutpostError {
  override readonly name = 'SchemaValidationError'
  constructor(message: string, details?: ErrorDetails) {
    super('SCHEMA_VALIDATION', message, details)
  }
}

/**
 * The client and the relay run different versions of a map's schema. `details.outdated`
 * says which side must be upgraded (`'client'`: reload or update the app, its local data is
 * kept; `'relay'`: deploy the relay with the app's schema module); `details.map`,
 * `details.client` and `details.relay` give the versions.
 */
export class SchemaOutdatedError extends OutpostError {
  override readonly name = 'SchemaOutdatedError'
  constructor(message: string, details?: ErrorDetails) {
    super('SCHEMA_OUTDATED', message, details)
  }
}

/** A frame larger than the negotiated maximum; nothing of it was decoded. */
export class FrameTooLargeError extends OutpostError {
  override readonly name = 'FrameTooLargeError'
  constructor(message: string, details?: ErrorDetails) {
    super('FRAME_TOO_LARGE', message, details)
  }
}

/** A frame that breaks a decoding limit (nesting depth, element count, a length header that lies). */
export class DecodeLimitError extends OutpostError {
  override readonly name = 'DecodeLimitError'
  constructor(message: string, details?: ErrorDetails) {
    super('DECODE_LIMIT', message, details)
  }
}

/** A frame that is not valid msgpack, or uses a type Outpost does not accept. */
export class DecodeError extends OutpostError {
  override readonly name = 'DecodeError'
  constructor(message: string, details?: ErrorDetails) {
    super('DECODE_FAILED', message, details)
  }
}

/** A decoded frame that is not a valid protocol message. `details.issues` says which field. */
export class InvalidMessageError extends OutpostError {
  override readonly name = 'InvalidMessageError'
  constructor(message: string, details?: ErrorDetails) {
    super('INVALID_MESSAGE', message, details)
  }
}

/** The two sides share no protocol version. `details.supported` lists the receiver's versions. */
export class ProtocolVersionError extends OutpostError {
  override readonly name = 'ProtocolVersionError'
  constructor(message: string, details?: ErrorDetails) {
    super('PROTOCOL_VERSION', message, details)
  }
}

/** No token, or a token that failed verification (signature, algorithm, `aud`, `iss`, `nbf`). */
export class AuthError extends OutpostError {
  override readonly name = 'AuthError'
  constructor(message: string, details?: ErrorDetails) {
    super('UNAUTHENTICATED', message, details)
  }
}

/** The token expired; the client should call its `auth` callback for a fresh one and reconnect. */
export class TokenExpiredError extends OutpostError {
  override readonly name = 'TokenExpiredError'
  constructor(message: string, details?: ErrorDetails) {
    super('TOKEN_EXPIRED', message, details)
  }
}

/** The caller's rules do not allow this read, write, publish or lock. */
export class ForbiddenError extends OutpostError {
  override readonly name = 'ForbiddenError'
  constructor(message: string, details?: ErrorDetails) {
    super('FORBIDDEN', message, details)
  }
}

/** The caller sent more than its rate limit allows; `details.retryAfterMs` says when to try again. */
export class RateLimitError extends OutpostError {
  override readonly name = 'RateLimitError'
  constructor(message: string, details?: ErrorDetails) {
    super('RATE_LIMITED', message, details)
  }
}

/** The subject already holds the maximum number of connections. */
export class TooManyConnectionsError extends OutpostError {
  override readonly name = 'TooManyConnectionsError'
  constructor(message: string, details?: ErrorDetails) {
    super('TOO_MANY_CONNECTIONS', message, details)
  }
}

/** A store operation failed; what was committed before it is intact. */
export class StoreError extends OutpostError {
  override readonly name = 'StoreError'
  constructor(message: string, details?: ErrorDetails, options?: { cause?: unknown }) {
    super('STORE_FAILED', message, details, options)
  }
}

/** The store was closed; open a new one. */
export class StoreClosedError extends OutpostError {
  override readonly name = 'StoreClosedError'
  constructor(message: string, details?: ErrorDetails) {
    super('STORE_CLOSED', message, details)
  }
}

/**
 * Another Outpost engine (a worker of another deploy of the app, or a leader tab) holds the
 * local database and did not release it in time; nothing was read or written. Close the
 * app's other tabs (or reload them onto the same version), then reload.
 */
export class DatabaseLockedError extends OutpostError {
  override readonly name = 'DatabaseLockedError'
  constructor(message: string, details?: ErrorDetails) {
    super('DATABASE_LOCKED', message, details)
  }
}

/**
 * The bus between relays is unreachable or refused a message. Data is safe: the store is
 * the truth, and relays catch up from it when the bus is back.
 */
export class BusError extends OutpostError {
  override readonly name = 'BusError'
  constructor(message: string, details?: ErrorDetails, options?: { cause?: unknown }) {
    super('BUS_FAILED', message, details, options)
  }
}

/** The bus was closed; open a new one. */
export class BusClosedError extends OutpostError {
  override readonly name = 'BusClosedError'
  constructor(message: string, details?: ErrorDetails) {
    super('BUS_CLOSED', message, details)
  }
}

/**
 * A bus message larger than the bus's `maxMessageBytes`; nothing of it was sent. Its code is
 * `FRAME_TOO_LARGE` (a bus message is a frame between relays), so across the wire it arrives
 * as a {@link FrameTooLargeError}. `details` has `bytes` and `limitBytes`.
 */
export class BusMessageTooLargeError extends OutpostError {
  override readonly name = 'BusMessageTooLargeError'
  constructor(message: string, details?: ErrorDetails) {
    super('FRAME_TOO_LARGE', message, details)
  }
}

/** The browser refused to store more (storage quota). Committed data is intact; free space or ask for persistent storage. */
export class QuotaExceededError extends OutpostError {
  override readonly name = 'QuotaExceededError'
  constructor(message: string, details?: ErrorDetails, options?: { cause?: unknown }) {
    super('QUOTA_EXCEEDED', message, details, options)
  }
}

/** An operation did not finish in time (e.g. a call into a worker that died). */
export class TimeoutError extends OutpostError {
  override readonly name = 'TimeoutError'
  constructor(message: string, details?: ErrorDetails) {
    super('TIMEOUT', message, details)
  }
}

/** The worker that owns the data is gone and could not be restarted. */
export class WorkerUnavailableError extends OutpostError {
  override readonly name = 'WorkerUnavailableError'
  constructor(message: string, details?: ErrorDetails) {
    super('WORKER_UNAVAILABLE', message, details)
  }
}

/** The operation needs the relay (locks, entry processors) and the client is offline. */
export class OfflineError extends OutpostError {
  override readonly name = 'OfflineError'
  constructor(message: string, details?: ErrorDetails) {
    super('OFFLINE', message, details)
  }
}

/** A lock could not be acquired in time, or a lease was lost or is stale. */
export class LockError extends OutpostError {
  override readonly name = 'LockError'
  constructor(message: string, details?: ErrorDetails) {
    super('LOCK_FAILED', message, details)
  }
}

/** A server-side entry processor threw; nothing was changed. */
export class ProcessorError extends OutpostError {
  override readonly name = 'ProcessorError'
  constructor(message: string, details?: ErrorDetails) {
    super('PROCESSOR_FAILED', message, details)
  }
}

/** A named thing (processor, shape, lock) does not exist. */
export class NotFoundError extends OutpostError {
  override readonly name = 'NotFoundError'
  constructor(message: string, details?: ErrorDetails) {
    super('NOT_FOUND', message, details)
  }
}

/** Configuration that failed validation at start; `details.issues` lists what to fix. */
export class ConfigError extends OutpostError {
  override readonly name = 'ConfigError'
  constructor(message: string, details?: ErrorDetails) {
    super('CONFIG_INVALID', message, details)
  }
}

/** The relay is draining; reconnect (to another node). */
export class ShuttingDownError extends OutpostError {
  override readonly name = 'ShuttingDownError'
  constructor(message: string, details?: ErrorDetails) {
    super('SHUTTING_DOWN', message, details)
  }
}

/** A search on a map that declares no search index; the message says how to declare one. */
export class SearchNotDeclaredError extends OutpostError {
  override readonly name = 'SearchNotDeclaredError'
  constructor(message: string, details?: ErrorDetails) {
    super('SEARCH_NOT_DECLARED', message, details)
  }
}

/** A search names a field its map's search declaration does not index; `details.field` names it, `details.indexed` lists the indexed ones. */
export class UnknownSearchFieldError extends OutpostError {
  override readonly name = 'UnknownSearchFieldError'
  constructor(message: string, details?: ErrorDetails) {
    super('SEARCH_UNKNOWN_FIELD', message, details)
  }
}

/** A search whose text has no word to look for (empty, or only spaces and punctuation). */
export class EmptySearchError extends OutpostError {
  override readonly name = 'EmptySearchError'
  constructor(message: string, details?: ErrorDetails) {
    super('SEARCH_EMPTY_QUERY', message, details)
  }
}

/** A map holds more records than its search index may hold; `details.limit` and `details.records` say how far. */
export class SearchIndexFullError extends OutpostError {
  override readonly name = 'SearchIndexFullError'
  constructor(message: string, details?: ErrorDetails) {
    super('SEARCH_INDEX_FULL', message, details)
  }
}

/** A bug: something that should not happen did. The message carries what is known. */
export class InternalError extends OutpostError {
  override readonly name = 'InternalError'
  constructor(message: string, details?: ErrorDetails, options?: { cause?: unknown }) {
    super('INTERNAL', message, details, options)
  }
}

/** The plain shape an error takes on the wire and across the worker boundary. */
export interface SerializedError {
  code: ErrorCode
  message: string
  details?: ErrorDetails
}

type ErrorFactory = (message: string, details: ErrorDetails | undefined) => OutpostError

const factories: { readonly [C in ErrorCode]: ErrorFactory } = {
  CLOCK_DRIFT: (m, d) => new ClockDriftError(m, typeof d?.['receiverTime'] === 'number' ? d['receiverTime'] : 0, d),
  INVALID_VALUE: (m, d) => new InvalidValueError(m, d),
  VALUE_TOO_LARGE: (m, d) => new ValueTooLargeError(m, d),
  INVALID_KEY: (m, d) => new InvalidKeyError(m, d),
  INVALID_PREDICATE: (m, d) => new PredicateError(m, d),
  INVALID_QUERY: (m, d) => new QueryError(m, d),
  SCHEMA_VALIDATION: (m, d) => new SchemaValidationError(m, d),
  SCHEMA_OUTDATED: (m, d) => new SchemaOutdatedError(m, d),
  FRAME_TOO_LARGE: (m, d) => new FrameTooLargeError(m, d),
  DECODE_LIMIT: (m, d) => new DecodeLimitError(m, d),
  DECODE_FAILED: (m, d) => new DecodeError(m, d),
  INVALID_MESSAGE: (m, d) => new InvalidMessageError(m, d),
  PROTOCOL_VERSION: (m, d) => new ProtocolVersionError(m, d),
  UNAUTHENTICATED: (m, d) => new AuthError(m, d),
  TOKEN_EXPIRED: (m, d) => new TokenExpiredError(m, d),
  FORBIDDEN: (m, d) => new ForbiddenError(m, d),
  RATE_LIMITED: (m, d) => new RateLimitError(m, d),
  TOO_MANY_CONNECTIONS: (m, d) => new TooManyConnectionsError(m, d),
  STORE_FAILED: (m, d) => new StoreError(m, d),
  STORE_CLOSED: (m, d) => new StoreClosedError(m, d),
  DATABASE_LOCKED: (m, d) => new DatabaseLockedError(m, d),
  BUS_FAILED: (m, d) => new BusError(m, d),
  BUS_CLOSED: (m, d) => new BusClosedError(m, d),
  QUOTA_EXCEEDED: (m, d) => new QuotaExceededError(m, d),
  TIMEOUT: (m, d) => new TimeoutError(m, d),
  WORKER_UNAVAILABLE: (m, d) => new WorkerUnavailableError(m, d),
  OFFLINE: (m, d) => new OfflineError(m, d),
  LOCK_FAILED: (m, d) => new LockError(m, d),
  PROCESSOR_FAILED: (m, d) => new ProcessorError(m, d),
  NOT_FOUND: (m, d) => new NotFoundError(m, d),
  CONFIG_INVALID: (m, d) => new ConfigError(m, d),
  SHUTTING_DOWN: (m, d) => new ShuttingDownError(m, d),
  SEARCH_NOT_DECLARED: (m, d) => new SearchNotDeclaredError(m, d),
  SEARCH_UNKNOWN_FIELD: (m, d) => new UnknownSearchFieldError(m, d),
  SEARCH_EMPTY_QUERY: (m, d) => new EmptySearchError(m, d),
  SEARCH_INDEX_FULL: (m, d) => new SearchIndexFullError(m, d),
  INTERNAL: (m, d) => new InternalError(m, d),
}

/** True when `code` is one of Outpost's stable error codes. */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(factories, code)
}

/** True for any error Outpost raised on purpose (any subclass). */
export function isOutpostError(error: unknown): error is OutpostError {
  return error instanceof OutpostError
}

/**
 * Turns any thrown value into the plain shape that crosses the worker boundary and the
 * wire. Errors that are not Outpost's become `INTERNAL` with their message.
 */
export function serializeError(error: unknown): SerializedError {
  if (error instanceof OutpostError) {
    return error.details === undefined
      ? { code: error.code, message: printable(error.message) }
      : { code: error.code, message: printable(error.message), details: printableDetails(error.details) as ErrorDetails }
  }
  const message = error instanceof Error ? error.message : String(error)
  return { code: 'INTERNAL', message: printable(message) }
}

/**
 * Messages quote keys and values cut to a length, which can split a surrogate pair; the
 * wire refuses lone surrogates, so strings in a serialized error are made well-formed.
 */
function printableDetails(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return printable(value)
  if (depth > 4 || typeof value !== 'object' || value === null || value instanceof Uint8Array || value instanceof Date) return value
  if (Array.isArray(value)) return value.map((item) => printableDetails(item, depth + 1))
  const out: Record<string, unknown> = {}
  for (const [key, item] of Object.entries(value)) Object.defineProperty(out, printable(key), { value: printableDetails(item, depth + 1), enumerable: true, writable: true, configurable: true })
  return out
}

/** Rebuilds the subclass named by `code`; an unknown code becomes an `InternalError` that keeps the original code in its details. */
export function deserializeError(serialized: SerializedError | { code: string; message: string; details?: ErrorDetails }): OutpostError {
  if (isErrorCode(serialized.code)) return factories[serialized.code](serialized.message, serialized.details)
  return new InternalError(serialized.message, { ...serialized.details, originalCode: serialized.code })
}
