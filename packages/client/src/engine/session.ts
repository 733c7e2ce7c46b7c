/**
 * The SDK's view of the engine: every call is bounded by a timeout (a dead worker gives a
 * typed `TimeoutError`, never a hang), `Result`s are unwrapped, errors are rebuilt with
 * `deserializeError` so `instanceof` and `code` hold in the tab, and subscriptions are
 * remembered so they can be made again when the engine is replaced.
 */
import { OutpostError, TimeoutError, WorkerUnavailableError, deserializeError, isErrorCode } from '@outpost/core'
import type { EngineApi, Result } from '@outpost/worker'
// The method table only: the engine itself loads lazily (in-page mode) or in a worker.
import { methodSpec } from '@outpost/worker/methods'
import { reportListenerError, type EngineMethod, type EngineTransport } from './transport'

/** What a call to `method` resolves with once its `Result` (if any) is unwrapped. */
export type Answer<K extends EngineMethod> = Unwrap<Awaited<ReturnType<EngineApi[K]>>>
type Unwrap<R> = [R] extends [Result<infer T>] ? T : R

/** A subscription the session re-makes whenever the engine is replaced. */
export interface TrackedSubscription<Id> {
  /**
   * Makes the subscription in the current engine. `isCurrent` turns false once this
   * attempt is superseded (engine replaced, subscription closed): callbacks must drop
   * events when it is false, because the old engine may still be sending them.
   */
  start(isCurrent: () => boolean): Promise<Id>
  /** Undoes what `start` made. */
  stop(id: Id): Promise<void>
  /** Called when `start` fails for a reason other than the engine being replaced. */
  onError?(error: OutpostError): void
}

/** A handle on a tracked subscription. */
export interface TrackedHandle {
  /** Stops the subscription (idempotent). */
  close(): void
}

interface Entry {
  readonly spec: TrackedSubscription<unknown>
  generation: number
  id: unknown
  active: boolean
}

/** Options of {@link EngineSession}. */
export interface SessionOptions {
  /** How long a call may take before it fails with `TimeoutError` (ms). */
  readonly timeoutMs: number
  /**
   * While subscriptions are open, ask the engine for its status this often (ms), so a
   * worker that died while the tab only listens is noticed (by the call timing out) and
   * restarted. 0 turns it off (an in-page engine cannot die on its own).
   */
  readonly heartbeatMs?: number
  /**
   * Where an SDK error goes when the app gave no callback for it (a subscription that
   * failed without an `onError`). Default: `console.error`, never an uncaught exception.
   */
  readonly onUnhandledError?: (error: OutpostError) => void
}

/** The engine as the SDK calls it. */
export class EngineSession {
  readonly #transport: EngineTransport
  readonly #timeoutMs: number
  readonly #entries = new Set<Entry>()
  readonly #removeReset: () => void
  readonly #heartbeat: ReturnType<typeof setInterval> | undefined
  readonly #onUnhandledError: (error: OutpostError) => void
  #closed = false

  constructor(transport: EngineTransport, options: SessionOptions) {
    this.#transport = transport
    this.#timeoutMs = options.timeoutMs
    this.#onUnhandledError = options.onUnhandledError ?? logUnhandledError
    this.#removeReset = transport.onReset(() => this.#restartAll())
    const heartbeatMs = options.heartbeatMs ?? 0
    if (heartbeatMs > 0) {
      this.#heartbeat = setInterval(() => {
        // A timeout here triggers recovery inside `call`; the error itself has no caller to go to.
        if (this.#entries.size > 0) this.call('status').catch(ignoreHeartbeatFailure)
      }, heartbeatMs)
    }
  }

  /** Which runtime owns the data. */
  get mode(): EngineTransport['mode'] {
    return this.#transport.mode
  }

  /** The bound on a call into the engine (ms). */
  get timeoutMs(): number {
    return this.#timeoutMs
  }

  /**
   * Hands an error nobody asked for to the client's `onError` (or logs it). An app bug in
   * that handler is the app's, and is rethrown outside the SDK's bookkeeping.
   */
  reportUnhandled(error: OutpostError): void {
    try {
      this.#onUnhandledError(error)
    } catch (thrown) {
      reportListenerError(thrown)
    }
  }

  /** Calls an engine method; rejects with an `OutpostError` subclass. */
  call<K extends EngineMethod>(method: K, ...args: Parameters<EngineApi[K]>): Promise<Answer<K>> {
    return this.callWithin(this.#timeoutMs, method, ...args)
  }

  /**
   * Like {@link call}, with its own bound: for calls the engine itself may legitimately
   * take long to answer (a lock acquisition waiting its turn, a relay round trip), which
   * must not be mistaken for a dead worker.
   */
  async callWithin<K extends EngineMethod>(timeoutMs: number, method: K, ...args: Parameters<EngineApi[K]>): Promise<Answer<K>> {
    if (this.#closed) throw new WorkerUnavailableError(`The client is closed; create a new one to call ${method}`)
    let raw: unknown
    try {
      raw = await this.#withTimeout(this.#transport.call(method, args), method, timeoutMs)
    } catch (error) {
      throw toOutpostError(error, method)
    }
    // The engine's method table says which methods answer a `Result`.
    if (methodSpec(method).answer !== 'result') return raw as Answer<K>
    const result = raw as Result<unknown>
    if (result.ok) return result.value as Answer<K>
    throw deserializeError(result.error)
  }

  /** Starts a subscription that survives engine replacement; see {@link TrackedSubscription}. */
  track<Id>(spec: TrackedSubscription<Id>): TrackedHandle {
    const entry: Entry = { spec: spec as TrackedSubscription<unknown>, generation: 0, id: undefined, active: true }
    this.#entries.add(entry)
    this.#start(entry)
    return {
      close: () => {
        if (!entry.active) return
        entry.active = false
        this.#entries.delete(entry)
        const id = entry.id
        entry.id = undefined
        if (id !== undefined && !this.#closed) void entry.spec.stop(id).catch(ignoreStopFailure)
      },
    }
  }

  /** Stops all subscriptions and closes the transport. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    clearInterval(this.#heartbeat)
    this.#removeReset()
    for (const entry of this.#entries) entry.active = false
    this.#entries.clear()
    await this.#transport.close()
  }

  #start(entry: Entry): void {
    const generation = ++entry.generation
    const isCurrent = (): boolean => entry.active && entry.generation === generation && !this.#closed
    entry.spec.start(isCurrent).then(
      (id) => {
        if (isCurrent()) entry.id = id
        // Superseded while starting: the engine made it anyway, so undo it there.
        else if (!this.#closed) void entry.spec.stop(id).catch(ignoreStopFailure)
      },
      (error: unknown) => {
        if (!isCurrent()) return
        const outpostError = toOutpostError(error, 'subscribe')
        if (entry.spec.onError) entry.spec.onError(outpostError)
        else this.reportUnhandled(outpostError)
      },
    )
  }

  #restartAll(): void {
    for (const entry of this.#entries) {
      entry.id = undefined
      this.#start(entry)
    }
  }

  #withTimeout<T>(promise: Promise<T>, method: string, timeoutMs: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(
          new TimeoutError(
            `The Outpost engine did not answer ${method} within ${timeoutMs} ms; it is being restarted, retry the call`,
            { method, timeoutMs },
          ),
        )
        this.#transport.recover(`${method} timed out`)
      }, timeoutMs)
      promise.then(
        (value) => {
          clearTimeout(timer)
          resolve(value)
        },
        (error: unknown) => {
          clearTimeout(timer)
          reject(error)
        },
      )
    })
  }
}

/** Turns whatever a transport threw into an `OutpostError` subclass. */
export function toOutpostError(error: unknown, method: string): OutpostError {
  if (error instanceof OutpostError) return error
  if (typeof error === 'object' && error !== null && 'code' in error && isErrorCode(error.code)) {
    const message = 'message' in error && typeof error.message === 'string' ? error.message : String(error.code)
    return deserializeError({ code: error.code, message })
  }
  const detail = error instanceof Error ? error.message : String(error)
  return new WorkerUnavailableError(`The Outpost engine failed to answer ${method} (${detail}); it will be restarted on the next call`, {
    method,
  })
}

/**
 * The default for errors without a callback: a page must not get an uncaught exception
 * for a bad query, but the developer must still see it.
 */
function logUnhandledError(error: OutpostError): void {
  console.error(
    `Outpost: ${error.name} (${error.code}) reached no error handler: ${error.message}. Pass an onError callback to subscribe(), or createClient({ onError }) to handle such errors in one place.`,
    error,
  )
}

/** A failed heartbeat already did its job: a timeout restarted the engine. */
function ignoreHeartbeatFailure(_error: unknown): void {}

/** A failed unsubscribe is harmless: the engine is gone or the subscription already ended. */
function ignoreStopFailure(): void {}
