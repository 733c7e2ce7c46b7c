/**
 * Puts an engine behind comlink on one tab's port. Results already travel as
 * `Result<T>` objects with `SerializedError`s, so errors keep their class and `code` in the
 * tab. Callbacks arrive as comlink proxies: each call is guarded so a closed tab's proxy
 * cannot break other subscribers, and proxies are released on unsubscribe.
 */
import * as Comlink from 'comlink'
import { TimeoutError, WorkerUnavailableError, serializeError, type RecordValue, type Shape, type Value, type CollectionKind } from '@outpost/core'
import type {
  EngineApi,
  EngineHostApi,
  EngineInitOptions,
  EngineStatus,
  LeaseInfo,
  LeaseLostReason,
  QuerySpec,
  Result,
  Row,
  TopicEvent,
  WriteConcern,
  WriteRejection,
  WriteReceipt,
} from './engine-api'

/** How long (ms) the engine waits for a tab's auth callback before trying another tab's. */
export const AUTH_PROVIDER_TIMEOUT_MS = 10_000

type Callback<T> = (value: T) => unknown

/** Releases a comlink proxy (no-op for a plain function, e.g. in-page mode). */
function release(fn: unknown): void {
  const releaser = (fn as { [Comlink.releaseProxy]?: () => void } | undefined)?.[Comlink.releaseProxy]
  if (typeof releaser === 'function') {
    try {
      releaser.call(fn)
    } catch (error) {
      onReleaseError(error)
    }
  }
}

/** A proxy whose port is already gone cannot be released; nothing else needs doing. */
function onReleaseError(error: unknown): void {
  void error
}

/** Reports a failed callback into a tab; the subscription of other tabs goes on. */
function onCallbackError(error: unknown): void {
  if (typeof console !== 'undefined') console.warn('[outpost] a tab callback failed (the tab may have closed)', error)
}

/** Calls a (possibly remote) callback without letting its failure escape. */
function guarded<T>(fn: Callback<T>): (value: T) => void {
  return (value: T) => {
    try {
      const result = fn(value)
      if (result instanceof Promise) result.catch(onCallbackError)
    } catch (error) {
      onCallbackError(error)
    }
  }
}

/** Tokens from several tabs' `auth` callbacks: the newest first, the others as fallbacks. */
class AuthProviders {
  readonly #providers: (() => Promise<string | undefined>)[] = []

  add(provider: () => Promise<string | undefined>): void {
    this.#providers.unshift(provider)
  }

  /** Asks each provider in turn (with a timeout, a closed tab never answers). */
  readonly next = async (): Promise<string | undefined> => {
    let lastError: unknown = new WorkerUnavailableError('no tab supplied an auth callback')
    for (const provider of [...this.#providers]) {
      try {
        return await withTimeout(provider(), AUTH_PROVIDER_TIMEOUT_MS)
      } catch (error) {
        lastError = error
        if (error instanceof TimeoutError) {
          // That tab is gone: stop asking it.
          const at = this.#providers.indexOf(provider)
          if (at >= 0) this.#providers.splice(at, 1)
          release(provider)
        }
      }
    }
    throw lastError
  }
}

const authByEngine = new WeakMap<EngineApi, AuthProviders>()

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new TimeoutError(`the tab did not answer within ${ms} ms`)), ms)
    promise.then(
      (v) => {
        clearTimeout(timer)
        resolve(v)
      },
      (e: unknown) => {
        clearTimeout(timer)
        reject(e)
      },
    )
  })
}

/**
 * Builds the API object served to one tab (or to the page in in-page mode). `getEngine`
 * resolves the engine, or undefined when none exists yet.
 */
export function createTabApi(getEngine: () => Promise<EngineApi | undefined>, init?: (options: EngineInitOptions) => Promise<Result<EngineStatus>>): EngineHostApi {
  const callbacks = new Map<string, unknown>()

  async function engineOr<T>(fn: (engine: EngineApi) => Promise<Result<T>>): Promise<Result<T>> {
    try {
      const engine = await getEngine()
      if (engine === undefined) throw new WorkerUnavailableError('the engine is not started: call init(options) first')
      return await fn(engine)
    } catch (error) {
      return { ok: false, error: serializeError(error) }
    }
  }

  async function engineVoid(fn: (engine: EngineApi) => Promise<void>): Promise<void> {
    const engine = await getEngine()
    if (engine === undefined) throw new WorkerUnavailableError('the engine is not started: call init(options) first')
    await fn(engine)
  }

  async function subscribe<T>(prefix: string, cb: unknown, start: (fn: (v: T) => void) => Promise<Result<number>>): Promise<Result<number>> {
    const result = await start(guarded(cb as Callback<T>))
    if (result.ok) callbacks.set(`${prefix}${result.value}`, cb)
    else release(cb)
    return result
  }

  function drop(id: string): void {
    release(callbacks.get(id))
    callbacks.delete(id)
  }

  return {
    init: async (options) => {
      if (init === undefined) return engineOr((e) => e.ready())
      return init(options)
    },
    ready: () => engineOr((e) => e.ready()),
    set: (map: string, key: string, record: RecordValue, callId?: string): Promise<Result<WriteReceipt>> => engineOr((e) => e.set(map, key, record, callId)),
    update: (map, key, patch, callId) => engineOr((e) => e.update(map, key, patch, callId)),
    delete: (map, key, callId) => engineOr((e) => e.delete(map, key, callId)),
    get: (map, key) => engineOr((e) => e.get(map, key)),
    orAdd: (map: string, key: string, value: Value, callId?: string) => engineOr((e) => e.orAdd(map, key, value, callId)),
    orRemove: (map: string, key: string, value: Value, callId?: string) => engineOr((e) => e.orRemove(map, key, value, callId)),
    counterAdd: (name, delta, callId) => engineOr((e) => e.counterAdd(name, delta, callId)),
    subscribeQuery: (spec: QuerySpec, onRows) => engineOr((e) => subscribe<readonly Row[]>('q', onRows, (fn) => e.subscribeQuery(spec, fn))),
    unsubscribeQuery: (id) =>
      engineVoid(async (e) => {
        await e.unsubscribeQuery(id)
        drop(`q${id}`)
        drop(`v${id}`)
      }),
    subscribeRecord: (map, key, onValue) => engineOr((e) => subscribe<RecordValue | undefined>('v', onValue, (fn) => e.subscribeRecord(map, key, fn))),
    subscribeValue: (kind: Exclude<CollectionKind, 'lww'>, map, key, onValue) => engineOr((e) => subscribe<Value>('v', onValue, (fn) => e.subscribeValue(kind, map, key, fn))),
    subscribeShape: (shape: Shape) => engineOr((e) => e.subscribeShape(shape)),
    unsubscribeShape: (id) => engineVoid((e) => e.unsubscribeShape(id)),
    watchWrite: (opId, onProgress) =>
      engineVoid((e) =>
        e.watchWrite(opId, (event: WriteConcern | WriteRejection) => {
          guarded(onProgress as Callback<WriteConcern | WriteRejection>)(event)
          if (event === 'persisted' || typeof event === 'object') release(onProgress)
        }),
      ),
    status: async () => {
      const engine = await getEngine()
      if (engine === undefined) throw new WorkerUnavailableError('the engine is not started: call init(options) first')
      return engine.status()
    },
    subscribeStatus: async (onStatus) => {
      const engine = await getEngine()
      if (engine === undefined) throw new WorkerUnavailableError('the engine is not started: call init(options) first')
      const id = await engine.subscribeStatus(guarded(onStatus as Callback<EngineStatus>))
      callbacks.set(`s${id}`, onStatus)
      return id
    },
    unsubscribeStatus: (id) =>
      engineVoid(async (e) => {
        await e.unsubscribeStatus(id)
        drop(`s${id}`)
      }),
    setToken: (token) => engineVoid((e) => e.setToken(token)),
    setAuthProvider: (provider) =>
      engineVoid(async (e) => {
        // One provider list per engine, shared by every tab's port.
        let auth = authByEngine.get(e)
        const first = auth === undefined
        auth ??= new AuthProviders()
        authByEngine.set(e, auth)
        auth.add(provider)
        if (first) await e.setAuthProvider(auth.next)
      }),
    setOffline: (offline) => engineVoid((e) => e.setOffline(offline)),
    subscribeTopic: (topic, client, onEvent) => engineOr((e) => subscribe<TopicEvent>('t', onEvent, (fn) => e.subscribeTopic(topic, client, fn))),
    unsubscribeTopic: (id) =>
      engineVoid(async (e) => {
        await e.unsubscribeTopic(id)
        drop(`t${id}`)
      }),
    publishTopic: (topic, client, data) => engineOr((e) => e.publishTopic(topic, client, data)),
    acquireLock: (name, ttl, wait, onLost) =>
      engineOr(async (e) => {
        // The lease id is known only after the grant; a loss before that cannot happen.
        let leaseId: number | undefined
        const result: Result<LeaseInfo> = await e.acquireLock(name, ttl, wait, (reason: LeaseLostReason) => {
          guarded(onLost as Callback<LeaseLostReason>)(reason)
          if (leaseId !== undefined) drop(`l${leaseId}`)
          else release(onLost)
        })
        if (result.ok) {
          leaseId = result.value.id
          callbacks.set(`l${leaseId}`, onLost)
        } else release(onLost)
        return result
      }),
    extendLock: (id, ttl) => engineOr((e) => e.extendLock(id, ttl)),
    releaseLock: (id) =>
      engineOr(async (e) => {
        const result = await e.releaseLock(id)
        drop(`l${id}`)
        return result
      }),
    checkLock: (name, token) => engineOr((e) => e.checkLock(name, token)),
    invoke: (map, key, processor, args) => engineOr((e) => e.invoke(map, key, processor, args)),
  }
}

/** Serves `engine` to one tab over `port` (a MessagePort, or anything comlink accepts as an endpoint). */
export function exposeEngine(engine: EngineApi, port: Comlink.Endpoint): void {
  Comlink.expose(
    createTabApi(async () => engine),
    port,
  )
}
