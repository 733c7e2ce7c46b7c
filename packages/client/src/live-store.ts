/**
 * A live value fed by one engine subscription and shared by any number of listeners (a
 * query's rows, a record, a counter, the status). The engine subscription opens with the
 * first listener and closes with the last; `getSnapshot` returns the same object until the
 * value changes, which is what React's `useSyncExternalStore` needs.
 *
 * A subscription the engine refuses (an invalid predicate, a bad key) fails the store: the
 * typed error goes to every `onError` given, later subscribers get it at once, `get()`
 * rejects with it, and `getError()` returns it. With no `onError` anywhere it goes to the
 * client's `onError` option (default `console.error`), never to an uncaught exception.
 * The last unsubscribe clears it, so the next subscribe tries again.
 */
import type { OutpostError } from '@outpost/core'
import type { EngineSession, TrackedHandle } from './engine/session'
import { reportListenerError } from './engine/transport'

/** Something that can be read now and watched. */
export interface Live<V> {
  /**
   * Calls `listener` with the current value as soon as it is known, and after every
   * change, online or offline. `onError` receives a typed error if the subscription
   * cannot be made (e.g. `PredicateError` for an invalid `where`); without it, that error
   * goes to the client's `onError` option. Returns the unsubscribe function.
   */
  subscribe(listener: (value: V) => void, onError?: (error: OutpostError) => void): () => void
  /** The latest value, or `undefined` before the first one arrived (or with no listener). */
  getSnapshot(): V | undefined
  /** Why the subscription failed, while it is failed (`undefined` otherwise). */
  getError(): OutpostError | undefined
  /** The current value (subscribes just long enough to get it); rejects with the typed error if the subscription fails. */
  get(): Promise<V>
}

/** How a {@link LiveStore} opens its engine subscription. */
export interface LiveSource<V, Id> {
  /** Subscribes in the engine; `emit` delivers each new value. */
  open(emit: (value: V) => void): Promise<Id>
  /** Ends the engine subscription. */
  close(id: Id): Promise<void>
}

/**
 * Something between the engine's values and the listeners: this tab's own pending writes
 * shown on top of the worker's last value (see `overlay/`).
 */
export interface LiveLayer<V> {
  /**
   * The engine sent `value`; returns what listeners see now. Returning the value they
   * already have (the same object) means nothing visible changed, and nobody is called.
   */
  onBase(value: V): V
  /**
   * Starts showing writes: `show` delivers a new value, possibly synchronously inside the
   * write call (and so re-entered by a listener that writes); returns the function that
   * stops (and forgets the base).
   */
  start(show: (value: V) => void): () => void
}

/** The shared implementation of {@link Live}. */
export class LiveStore<V, Id = number> implements Live<V> {
  readonly #session: EngineSession
  readonly #source: LiveSource<V, Id>
  readonly #layer: LiveLayer<V> | undefined
  readonly #listeners = new Set<(value: V) => void>()
  readonly #errorListeners = new Set<(error: OutpostError) => void>()
  #snapshot: { readonly value: V } | undefined
  #error: OutpostError | undefined
  #handle: TrackedHandle | undefined
  #stopLayer: (() => void) | undefined

  constructor(session: EngineSession, source: LiveSource<V, Id>, layer?: LiveLayer<V>) {
    this.#session = session
    this.#source = source
    this.#layer = layer
  }

  subscribe(listener: (value: V) => void, onError?: (error: OutpostError) => void): () => void {
    this.#listeners.add(listener)
    if (onError) this.#errorListeners.add(onError)
    if (this.#snapshot) callSafely(listener, this.#snapshot.value)
    // Already failed: this subscriber learns it now, not never (the engine will not answer again).
    if (this.#error) this.#deliverError(this.#error, onError)
    if (this.#handle === undefined) {
      const layer = this.#layer
      this.#stopLayer = layer?.start((value) => this.#emit(value))
      this.#handle = this.#session.track<Id>({
        start: (isCurrent) =>
          this.#source.open((value) => {
            if (isCurrent()) this.#emit(layer === undefined ? value : layer.onBase(value))
          }),
        stop: (id) => this.#source.close(id),
        onError: (error) => this.#fail(error),
      })
    }
    let active = true
    return () => {
      if (!active) return
      active = false
      this.#listeners.delete(listener)
      if (onError) this.#errorListeners.delete(onError)
      if (this.#listeners.size === 0) {
        this.#handle?.close()
        this.#handle = undefined
        this.#stopLayer?.()
        this.#stopLayer = undefined
        this.#snapshot = undefined
        this.#error = undefined
      }
    }
  }

  getSnapshot(): V | undefined {
    return this.#snapshot?.value
  }

  getError(): OutpostError | undefined {
    return this.#error
  }

  get(): Promise<V> {
    if (this.#snapshot) return Promise.resolve(this.#snapshot.value)
    return new Promise<V>((resolve, reject) => {
      let settled = false
      let unsubscribe: (() => void) | undefined
      const finish = (): void => {
        settled = true
        // Deferred: `subscribe` may deliver synchronously, before `unsubscribe` is assigned.
        queueMicrotask(() => unsubscribe?.())
      }
      unsubscribe = this.subscribe(
        (value) => {
          if (settled) return
          finish()
          resolve(value)
        },
        (error) => {
          if (settled) return
          finish()
          reject(error)
        },
      )
    })
  }

  #emit(value: V): void {
    // A value means the subscription works (e.g. re-made in a replaced engine).
    this.#error = undefined
    // A layer hands back the value listeners already have when nothing visible changed.
    if (this.#layer !== undefined && this.#snapshot !== undefined && this.#snapshot.value === value) return
    const snapshot = { value }
    this.#snapshot = snapshot
    for (const listener of [...this.#listeners]) {
      // A listener's own write (shown synchronously by the layer) delivered a newer value to
      // everyone: handing this one to the rest would leave them on stale rows.
      if (this.#snapshot !== snapshot) return
      callSafely(listener, value)
    }
  }

  #fail(error: OutpostError): void {
    this.#error = error
    if (this.#errorListeners.size === 0) {
      this.#session.reportUnhandled(error)
      return
    }
    for (const listener of [...this.#errorListeners]) callSafely(listener, error)
  }

  #deliverError(error: OutpostError, onError: ((error: OutpostError) => void) | undefined): void {
    if (onError) callSafely(onError, error)
    else this.#session.reportUnhandled(error)
  }
}

function callSafely<V>(listener: (value: V) => void, value: V): void {
  try {
    listener(value)
  } catch (error) {
    reportListenerError(error)
  }
}
