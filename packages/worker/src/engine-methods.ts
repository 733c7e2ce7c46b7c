/**
 * The engine's RPC surface in one table. Each row is one method a tab may call: its
 * signature (from which {@link EngineApi} is derived), how it crosses the boundary, how it
 * answers, where its callback and call id sit, and the check its arguments pass where they
 * enter the engine. Everything that handles engine methods by name derives from this table:
 * the `EngineApi` type, the worker's per-tab API (`createTabApi`), and in `@outpost/client`
 * the SDK session (which answers to unwrap) and the leader-tab protocol (which calls carry
 * call ids, which end subscriptions). Adding a method is one row here plus its
 * implementation in the engine.
 *
 * Every method is safe to call from many tabs at once. Writes take an optional `callId`:
 * an id the caller chose for this call. A second call with the same id (a retry after the
 * answer was lost, e.g. re-sent to a new leader tab) returns the first call's receipt and
 * writes nothing, also after an engine restart.
 */
import { assertKey, assertMapName, assertRecord, assertValue, validateQuery, validateSearchSpec, validateShape, type CollectionKind, type RecordValue, type Shape, type Value } from '@outpost/core'
import type {
  EngineStatus,
  LeaseInfo,
  LeaseLostReason,
  LockStatus,
  PublishReceipt,
  QuerySpec,
  Result,
  Row,
  TopicEvent,
  WriteConcern,
  WriteReceipt,
  WriteRejection,
} from './engine-api'
import type { InspectorSnapshot } from './inspector-api'
import type { SearchHit, SearchSpec } from './search/search-types'

/**
 * How a method crosses the boundary:
 * - `call`: arguments in, one answer out.
 * - `subscription`: passes a callback the engine calls until the method named `end` is
 *   called with the id this one answered.
 * - `stream`: passes a callback the engine calls until it reports a `last` event (it may
 *   also be ended by a method named `end`, e.g. a lease by its release).
 * - `provider`: passes a callback the engine calls for answers (e.g. tokens).
 */
export type MethodKind = 'call' | 'subscription' | 'stream' | 'provider'

/** How a method answers: a `Result<T>` with failures as values ('result'), or its value with failures thrown ('plain'). */
export type MethodAnswer = 'result' | 'plain'

/** The signature of an engine method (every method answers asynchronously). */
export type MethodSignature = (...args: never[]) => Promise<unknown>

/** The answer a signature implies: a method that answers a `Result` is 'result', any other 'plain'. */
export type AnswerOf<F extends MethodSignature> = Awaited<ReturnType<F>> extends Result<unknown> ? 'result' : 'plain'

/** One row of {@link ENGINE_METHODS}. */
export interface MethodSpec<F extends MethodSignature = MethodSignature> {
  readonly kind: MethodKind
  readonly answer: AnswerOf<F>
  /** The index of the callback argument (every kind but `call`). */
  readonly callback?: number
  /** The method that ends a subscription (or a stream early), called with this method's handle. */
  readonly end?: string
  /** A stream's handle in the answer (a subscription's handle is the answer itself). */
  readonly handle?: (value: never) => unknown
  /** True for a stream's last event: its callback is done. */
  readonly last?: (event: never) => boolean
  /** The index of the optional call id of a write: a re-sent call with the same id writes nothing. */
  readonly callId?: number
  /** Checks the arguments where they enter the engine, once; throws a typed error, or returns them (copied where a copy is safer). */
  readonly parse?: (args: Parameters<F>) => Parameters<F>
  /** The method's signature. Type only: never set. */
  readonly signature?: F
}

/** What a row may say besides its kind and answer. */
type RowOptions<F extends MethodSignature> = Omit<MethodSpec<F>, 'kind' | 'answer' | 'signature'>

function call<F extends MethodSignature>(answer: AnswerOf<F>, options: RowOptions<F> = {}): MethodSpec<F> {
  return { kind: 'call', answer, ...options }
}

function subscription<F extends MethodSignature>(answer: AnswerOf<F>, options: RowOptions<F> & { readonly callback: number; readonly end: string }): MethodSpec<F> {
  return { kind: 'subscription', answer, ...options }
}

function stream<F extends MethodSignature>(answer: AnswerOf<F>, options: RowOptions<F> & { readonly callback: number; readonly last: (event: never) => boolean }): MethodSpec<F> {
  return { kind: 'stream', answer, ...options }
}

function provider<F extends MethodSignature>(answer: AnswerOf<F>, options: RowOptions<F> & { readonly callback: number }): MethodSpec<F> {
  return { kind: 'provider', answer, ...options }
}

/** A `parse` that only checks: the arguments go on unchanged. */
function checked<A extends readonly unknown[]>(check: (args: NoInfer<A>) => void): (args: A) => A {
  return (args) => {
    check(args)
    return args
  }
}

/** The check of methods whose first two arguments are a map name and a key. */
const checkMapKey = ([map, key]: readonly [string, string, ...unknown[]]): void => {
  assertMapName(map)
  assertKey(key)
}

/** The engine's methods: see the file header. */
export const ENGINE_METHODS = {
  /** Resolves when the engine has opened its storage. Idempotent. */
  ready: call<() => Promise<Result<EngineStatus>>>('result'),

  /** Replaces a record (all fields stamped now; fields not given are removed). Resolves when durable locally. */
  set: call<(map: string, key: string, record: RecordValue, callId?: string) => Promise<Result<WriteReceipt>>>('result', {
    callId: 3,
    parse: checked(([map, key, record]) => {
      checkMapKey([map, key])
      assertRecord(record, `${map}/${key}`)
    }),
  }),
  /** Writes only the given fields (field-level LWW). Resolves when durable locally. */
  update: call<(map: string, key: string, patch: RecordValue, callId?: string) => Promise<Result<WriteReceipt>>>('result', {
    callId: 3,
    parse: checked(([map, key, patch]) => {
      checkMapKey([map, key])
      assertRecord(patch, `${map}/${key}`)
    }),
  }),
  /** Deletes a record (a tombstone). Resolves when durable locally. */
  delete: call<(map: string, key: string, callId?: string) => Promise<Result<WriteReceipt>>>('result', { callId: 2, parse: checked(checkMapKey) }),
  /** Reads one record's visible fields. */
  get: call<(map: string, key: string) => Promise<Result<RecordValue | undefined>>>('result', { parse: checked(checkMapKey) }),

  /** Adds a value to an OR-map key. */
  orAdd: call<(map: string, key: string, value: Value, callId?: string) => Promise<Result<WriteReceipt>>>('result', {
    callId: 3,
    parse: checked(([map, key, value]) => {
      checkMapKey([map, key])
      assertValue(value, `${map}/${key}`)
    }),
  }),
  /** Removes the adds of a value this replica has observed from an OR-map key. */
  orRemove: call<(map: string, key: string, value: Value, callId?: string) => Promise<Result<WriteReceipt>>>('result', {
    callId: 3,
    parse: checked(([map, key, value]) => {
      checkMapKey([map, key])
      assertValue(value, `${map}/${key}`)
    }),
  }),
  /** Adds `delta` (may be negative) to the PN counter `name` (a key of the `COUNTERS_MAP` collection). The engine checks `delta` with the counter's own rules. */
  counterAdd: call<(name: string, delta: number, callId?: string) => Promise<Result<WriteReceipt>>>('result', { callId: 2, parse: checked(([name]) => assertKey(name)) }),

  /**
   * Runs a live query: `onRows` is called at once with the current rows and again after
   * every local write or remote merge that changes them. Returns an id for `unsubscribeQuery`.
   */
  subscribeQuery: subscription<(spec: QuerySpec, onRows: (rows: readonly Row[]) => void) => Promise<Result<number>>>('result', {
    callback: 1,
    end: 'unsubscribeQuery',
    // A validated copy: the engine keeps it, so the caller's object may change afterwards.
    parse: ([spec, onRows]) => {
      assertMapName(spec.map)
      return [{ map: spec.map, ...validateQuery({ where: spec.where, orderBy: spec.orderBy, limit: spec.limit }) }, onRows]
    },
  }),
  /** Ends a live query, record or value subscription (they share one id space). */
  unsubscribeQuery: call<(id: number) => Promise<void>>('plain'),
  /** Live value of a record (undefined when absent or deleted). */
  subscribeRecord: subscription<(map: string, key: string, onValue: (value: RecordValue | undefined) => void) => Promise<Result<number>>>('result', {
    callback: 2,
    end: 'unsubscribeQuery',
    parse: checked(checkMapKey),
  }),
  /**
   * Live value of an OR-map key (`map`, `key`) or of a counter (`map` is the counter's
   * name and `key` is ignored: all counters are keys of the one `COUNTERS_MAP` collection).
   */
  subscribeValue: subscription<(kind: Exclude<CollectionKind, 'lww'>, map: string, key: string, onValue: (value: Value) => void) => Promise<Result<number>>>('result', {
    callback: 3,
    end: 'unsubscribeQuery',
    parse: checked(([kind, map, key]) => {
      assertMapName(map)
      // A counter's name is its key in the counters collection.
      assertKey(kind === 'counter' ? map : key)
    }),
  }),

  // ── full-text search (search/live-searches.ts) ──
  /**
   * Runs a live full-text search over a map's records: `onHits` is called at once with the
   * best hits and again whenever local writes, remote merges or move-outs change them. The
   * spec carries the map's search declaration when the caller's handle has one.
   */
  subscribeSearch: subscription<(spec: SearchSpec, onHits: (hits: readonly SearchHit[]) => void) => Promise<Result<number>>>('result', {
    callback: 1,
    end: 'unsubscribeSearch',
    // A validated copy: the engine keeps it.
    parse: ([spec, onHits]) => [validateSearchSpec(spec), onHits],
  }),
  /** Ends a live search. */
  unsubscribeSearch: call<(id: number) => Promise<void>>('plain'),

  /** Replicates a shape from the relay (persisted: survives restarts until `unsubscribeShape`). Returns its id. */
  subscribeShape: call<(shape: Shape) => Promise<Result<string>>>('result', { parse: ([shape]) => [validateShape(shape)] }),
  /** Stops replicating a shape (its records stay until evicted by other means). */
  unsubscribeShape: call<(id: string) => Promise<void>>('plain'),

  /**
   * Calls `onProgress` as write `opId` reaches 'relay' and 'persisted' (at once for states
   * already reached), or once with a {@link WriteRejection} when the relay refused it for good.
   */
  watchWrite: stream<(opId: number, onProgress: (event: WriteConcern | WriteRejection) => void) => Promise<void>>('plain', {
    callback: 1,
    last: (event: WriteConcern | WriteRejection) => event === 'persisted' || typeof event === 'object',
  }),
  /** Current status. */
  status: call<() => Promise<EngineStatus>>('plain'),
  /** Live updates of the status (the current one at once). Returns an id for `unsubscribeStatus`. */
  subscribeStatus: subscription<(onStatus: (status: EngineStatus) => void) => Promise<number>>('plain', { callback: 0, end: 'unsubscribeStatus' }),
  /** Ends a status subscription. */
  unsubscribeStatus: call<(id: number) => Promise<void>>('plain'),

  /**
   * Subscribes to a topic (ephemeral pub/sub): messages published by other clients of
   * this engine (other tabs) and, through the relay, by other browsers. `client` names the
   * subscribing client so its own publications are not echoed back. Re-subscribed on the
   * relay after every reconnect. Returns an id for `unsubscribeTopic`. (The coordinator
   * checks topic names, lock names and times: it is a public seam of its own.)
   */
  subscribeTopic: subscription<(topic: string, client: string, onEvent: (event: TopicEvent) => void) => Promise<Result<number>>>('result', { callback: 2, end: 'unsubscribeTopic' }),
  /** Ends a topic subscription. */
  unsubscribeTopic: call<(id: number) => Promise<void>>('plain'),
  /**
   * Publishes to a topic: delivered at once to this engine's other clients' subscriptions
   * (also offline), and through the relay when connected. Never queued.
   */
  publishTopic: call<(topic: string, client: string, data: Value) => Promise<Result<PublishReceipt>>>('result'),

  /**
   * Acquires a lock lease on the relay (waiting up to `wait` ms behind earlier holders).
   * Offline: fails at once with `OfflineError`. `onLost` is called once if the lease ends
   * without `releaseLock` (TTL expiry, revocation, or the connection dropping).
   */
  acquireLock: stream<(name: string, ttl: number, wait: number, onLost: (reason: LeaseLostReason) => void) => Promise<Result<LeaseInfo>>>('result', {
    callback: 3,
    last: () => true,
    end: 'releaseLock',
    handle: (lease: LeaseInfo) => lease.id,
  }),
  /** Extends a held lease by `ttl` ms from now. */
  extendLock: call<(id: number, ttl: number) => Promise<Result<LeaseInfo>>>('result'),
  /** Releases a held lease (no-op for one already lost or released). */
  releaseLock: call<(id: number) => Promise<Result<void>>>('result'),
  /** Asks the relay whether `token` is the current lease of lock `name`. */
  checkLock: call<(name: string, token: number) => Promise<Result<LockStatus>>>('result'),

  /** Runs the relay's entry processor `processor` atomically on `map/key`; resolves with its result. */
  invoke: call<(map: string, key: string, processor: string, args: Value) => Promise<Result<Value>>>('result'),

  /** Hands the engine a fresh token (the tab's `auth` callback result), e.g. after `auth-expired`. */
  setToken: call<(token: string | undefined) => Promise<void>>('plain'),
  /** Registers a tab's token provider; the engine calls it when it needs a token. */
  setAuthProvider: provider<(provider: () => Promise<string | undefined>) => Promise<void>>('plain', { callback: 0 }),
  /** Forces offline (true) or lets the engine connect (false); remembered for this database (across reloads and worker restarts) until changed. */
  setOffline: call<(offline: boolean) => Promise<void>>('plain'),

  // ── Inspector (developer tools): read-only, so calling these changes nothing (see inspector-api.ts).
  /** A snapshot of the engine's maps, shapes, outbox, connection, locks, topics and runtime. */
  inspect: call<() => Promise<Result<InspectorSnapshot>>>('result'),
  /** Live snapshots: one at once, then after changes (throttled). Returns an id for `unsubscribeInspector`. */
  subscribeInspector: subscription<(onSnapshot: (snapshot: InspectorSnapshot) => void) => Promise<number>>('plain', { callback: 0, end: 'unsubscribeInspector' }),
  /** Ends an inspector subscription. */
  unsubscribeInspector: call<(id: number) => Promise<void>>('plain'),
}

/** The methods a table describes, with their signatures. */
export type MethodsOf<T> = { [K in keyof T]: T[K] extends MethodSpec<infer F> ? F : never }

/** The name of an engine method. */
export type EngineMethodName = keyof typeof ENGINE_METHODS

/** The engine's methods by name, in table order. */
export const ENGINE_METHOD_NAMES = Object.keys(ENGINE_METHODS) as readonly EngineMethodName[]

/** The methods that end a subscription or a stream, called with its handle. */
export const ENDING_METHODS: ReadonlySet<EngineMethodName> = new Set(ENGINE_METHOD_NAMES.flatMap((method) => (methodSpec(method).end as EngineMethodName | undefined) ?? []))

/** The row of `method`, typed loosely so code that handles every method alike can read it. */
export function methodSpec(method: EngineMethodName): MethodSpec {
  return ENGINE_METHODS[method] as MethodSpec
}

/**
 * The handle `method` answered with: a subscription's id (the answer itself), a stream's
 * `handle` of it (a lease's id); undefined when the method failed.
 */
export function answerHandle(method: EngineMethodName, answer: unknown): unknown {
  const spec = methodSpec(method)
  let value = answer
  if (spec.answer === 'result') {
    const result = answer as Result<unknown>
    if (!result.ok) return undefined
    value = result.value
  }
  return spec.handle === undefined ? value : (spec.handle as (value: unknown) => unknown)(value)
}

/** Checks `args` of `method` where they enter the engine (see {@link MethodSpec.parse}); returns the arguments to use. */
export function parseArgs<K extends EngineMethodName>(method: K, args: Parameters<MethodsOf<typeof ENGINE_METHODS>[K]>): Parameters<MethodsOf<typeof ENGINE_METHODS>[K]> {
  const parse = methodSpec(method).parse
  return parse === undefined ? args : (parse(args as never) as unknown as typeof args)
}
