/**
 * Puts an engine behind comlink on one tab's port. Results already travel as
 * `Result<T>` objects with `SerializedError`s, so errors keep their class and `code` in the
 * tab. Callbacks arrive as comlink proxies: each call is guarded so a closed tab's proxy
 * cannot break other subscribers, and proxies are released on unsubscribe.
 */
import * as Comlink from 'comlink'
import { TimeoutError, WorkerUnavailableError, serializeError } from '@outpost/core'
import type { EngineApi, EngineHostApi, EngineInitOptions, EngineStatus, Result } from './engine-api'
import { ENDING_METHODS, ENGINE_METHOD_NAMES, ENGINE_METHODS, answerHandle, methodSpec, type EngineMethodName } from './engine-methods'

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

/** Proxies of callbacks one tab handed over, by `endMethod:handle`: released when what they serve ends. */
type TabCallbacks = Map<string, unknown>

/**
 * Runs `method` on `engine` for one tab, making its callback (if any) safe to call and
 * releasing the callback's proxy when what it serves ends (see `MethodKind`).
 */
async function serveCall(engine: EngineApi, method: EngineMethodName, args: unknown[], callbacks: TabCallbacks): Promise<unknown> {
  const spec = methodSpec(method)
  const fn = engine[method] as (...a: unknown[]) => Promise<unknown>
  const at = spec.callback ?? -1
  const callback = args[at]
  const drop = (key: string): void => {
    release(callbacks.get(key))
    callbacks.delete(key)
  }
  switch (spec.kind) {
    case 'call': {
      const answer = await fn.apply(engine, args)
      if (ENDING_METHODS.has(method)) drop(`${method}:${String(args[0])}`)
      return answer
    }
    case 'subscription': {
      const answer = await fn.apply(engine, withArg(args, at, guarded(callback as Callback<unknown>)))
      const handle = answerHandle(method, answer)
      if (handle !== undefined) callbacks.set(`${spec.end}:${String(handle)}`, callback)
      else release(callback)
      return answer
    }
    case 'stream': {
      // The handle is known only after the answer; an event before it cannot happen for a lease.
      let key: string | undefined
      const last = spec.last as (event: unknown) => boolean
      const answer = await fn.apply(
        engine,
        withArg(args, at, (event: unknown) => {
          guarded(callback as Callback<unknown>)(event)
          if (!last(event)) return
          if (key !== undefined) drop(key)
          else release(callback)
        }),
      )
      if (spec.end !== undefined) {
        const handle = answerHandle(method, answer)
        if (handle !== undefined) callbacks.set((key = `${spec.end}:${String(handle)}`), callback)
        else release(callback)
      }
      return answer
    }
    case 'provider': {
      // One provider list per engine, shared by every tab's port.
      let auth = authByEngine.get(engine)
      const first = auth === undefined
      auth ??= new AuthProviders()
      authByEngine.set(engine, auth)
      auth.add(callback as () => Promise<string | undefined>)
      if (first) await fn.apply(engine, withArg(args, at, auth.next))
      return undefined
    }
  }
}

/** `args` with the one at `index` replaced. */
function withArg(args: readonly unknown[], index: number, value: unknown): unknown[] {
  const out = [...args]
  out[index] = value
  return out
}

/**
 * Builds the API object served to one tab (or to the page in in-page mode): every method
 * of {@link ENGINE_METHODS}, plus `init`. `getEngine` resolves the engine, or undefined
 * when none exists yet: a fallible method then answers `WORKER_UNAVAILABLE`, another throws it.
 */
export function createTabApi(getEngine: () => Promise<EngineApi | undefined>, init?: (options: EngineInitOptions) => Promise<Result<EngineStatus>>): EngineHostApi {
  const callbacks: TabCallbacks = new Map()

  async function run(method: EngineMethodName, args: unknown[]): Promise<unknown> {
    const engine = await getEngine()
    if (engine === undefined) throw new WorkerUnavailableError('the engine is not started: call init(options) first')
    return serveCall(engine, method, args, callbacks)
  }

  const api: Record<string, (...args: unknown[]) => Promise<unknown>> = {}
  for (const method of ENGINE_METHOD_NAMES) {
    api[method] =
      methodSpec(method).answer === 'result'
        ? (...args) => run(method, args).catch((error: unknown): Result<never> => ({ ok: false, error: serializeError(error) }))
        : (...args) => run(method, args)
  }
  const ready = api['ready'] as () => Promise<unknown>
  api['init'] = (options) => (init === undefined ? ready() : init(options as EngineInitOptions))
  return api as unknown as EngineHostApi
}

/** Serves `engine` to one tab over `port` (a MessagePort, or anything comlink accepts as an endpoint). */
export function exposeEngine(engine: EngineApi, port: Comlink.Endpoint): void {
  Comlink.expose(
    createTabApi(async () => engine),
    port,
  )
}
