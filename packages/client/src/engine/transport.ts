/**
 * The seam between the SDK and the engine: however the engine runs (SharedWorker, a
 * leader tab's dedicated worker reached over BroadcastChannel, or the page itself), the
 * SDK sees one `EngineTransport` that calls engine methods by name.
 */
import type { EngineApi, EngineMethodName, RuntimeMode } from '@outpost/worker'

/** The name of one engine method: a row of the worker's `ENGINE_METHODS` table. */
export type EngineMethod = EngineMethodName

/** One way of reaching an engine. */
export interface EngineTransport {
  /** Which runtime owns the data. */
  readonly mode: RuntimeMode
  /**
   * Calls `method` with `args` as they would be passed to {@link EngineApi}. Callback
   * arguments are plain functions; the transport makes them cross its boundary. Resolves
   * with the engine's raw answer (a `Result` for fallible methods).
   */
  call(method: EngineMethod, args: readonly unknown[]): Promise<unknown>
  /**
   * Called when the engine behind the transport was replaced (worker restarted, new leader
   * tab): every subscription the SDK holds must be made again.
   */
  onReset(listener: () => void): () => void
  /**
   * The SDK suspects the engine is gone (a call timed out). The transport re-creates it
   * where it can; a transport that cannot do anything ignores this.
   */
  recover(reason: string): void
  /** Stops using the engine (and stops it when this tab owns it). */
  close(): Promise<void>
}

/** A tiny listener set used by transports for `onReset`. */
export class ResetSignal {
  readonly #listeners = new Set<() => void>()

  /** Adds a listener; returns its remover. */
  add(listener: () => void): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  /** Calls every listener; one listener throwing does not stop the others. */
  fire(): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener()
      } catch (error) {
        reportListenerError(error)
      }
    }
  }
}

/** Where errors thrown by app callbacks go: they must not break the SDK's own bookkeeping. */
export function reportListenerError(error: unknown): void {
  queueMicrotask(() => {
    throw error
  })
}
