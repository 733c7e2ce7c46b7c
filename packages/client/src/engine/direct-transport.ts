/**
 * A transport to an engine object in the same JavaScript realm: the in-page fallback, and
 * the leader tab's way of reaching its own engine. Calls are plain method calls; nothing
 * is cloned, so the engine must not keep references to the caller's arguments (it stores
 * copies in IndexedDB anyway).
 */
import type { EngineApi, RuntimeMode } from '@outpost/worker'
import { ResetSignal, type EngineMethod, type EngineTransport } from './transport'

/** An engine object the page owns. */
export type OwnedEngine = EngineApi & { close(): Promise<void> | void }

/** A transport to an engine running in this realm. */
export class DirectTransport implements EngineTransport {
  readonly mode: RuntimeMode
  readonly #engine: Promise<OwnedEngine>
  readonly #reset = new ResetSignal()
  #closed = false

  /** `engine` may still be starting; calls wait for it. */
  constructor(mode: RuntimeMode, engine: Promise<OwnedEngine>) {
    this.mode = mode
    this.#engine = engine
    // A failed start surfaces through the calls that await it.
    engine.catch(ignoreUntilAwaited)
  }

  async call(method: EngineMethod, args: readonly unknown[]): Promise<unknown> {
    const engine = await this.#engine
    const fn = engine[method] as (...a: unknown[]) => Promise<unknown>
    return fn.apply(engine, [...args])
  }

  onReset(listener: () => void): () => void {
    return this.#reset.add(listener)
  }

  /** An engine in this realm cannot die on its own; a stuck call is the engine's bug, not a restartable fault. */
  recover(_reason: string): void {}

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    const engine = await this.#engine.catch(() => undefined)
    await engine?.close()
  }
}

function ignoreUntilAwaited(): void {}
