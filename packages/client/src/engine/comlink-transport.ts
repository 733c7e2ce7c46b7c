/**
 * A transport to an engine exposed with comlink on a message endpoint: a SharedWorker's
 * port, a dedicated worker, or one end of a `MessageChannel`. When the engine is suspected
 * dead (a call timed out, the worker raised `error`), the endpoint is opened again — a
 * SharedWorker that died is started anew by the browser and resumes from IndexedDB — and
 * the SDK re-makes its subscriptions.
 */
import * as Comlink from 'comlink'
import { deserializeError } from '@outpost/core'
import type { EngineHostApi, EngineOptions, RuntimeMode } from '@outpost/worker'
import { ResetSignal, type EngineMethod, type EngineTransport } from './transport'

/** One opened connection to an engine. */
export interface EngineEndpoint {
  /** Where comlink talks. */
  readonly endpoint: Comlink.Endpoint
  /** Registers the callback to run when the endpoint reports that the engine died. */
  onDeath?(listener: (reason: string) => void): void
  /** Lets go of the endpoint (closes the port, terminates a dedicated worker). */
  dispose(): void
}

/** Options of {@link ComlinkTransport}. */
export interface ComlinkTransportOptions {
  readonly mode: RuntimeMode
  /** Opens a connection to the engine; called again to recover from a dead engine. */
  readonly open: () => EngineEndpoint
  /** Sent to the engine after each (re)connection, before any other call. */
  readonly engineOptions: EngineOptions
  /** Shortest time between two recoveries (ms), so a storm of timeouts restarts once. */
  readonly recoverIntervalMs?: number
  /** Injected clock. */
  readonly now?: () => number
}

type RemoteEngine = Comlink.Remote<EngineHostApi>

interface Connection {
  readonly endpoint: EngineEndpoint
  readonly remote: RemoteEngine
  readonly started: Promise<void>
}

/** An engine reached through comlink. */
export class ComlinkTransport implements EngineTransport {
  readonly mode: RuntimeMode
  readonly #options: ComlinkTransportOptions
  readonly #reset = new ResetSignal()
  readonly #now: () => number
  #current: Connection
  #lastRecover = Number.NEGATIVE_INFINITY
  #closed = false

  constructor(options: ComlinkTransportOptions) {
    this.mode = options.mode
    this.#options = options
    this.#now = options.now ?? Date.now
    this.#current = this.#connect()
  }

  async call(method: EngineMethod, args: readonly unknown[]): Promise<unknown> {
    const { remote, started } = this.#current
    await started
    const wireArgs = args.map((arg) => (typeof arg === 'function' ? Comlink.proxy(arg) : arg))
    const fn = remote[method] as unknown as (...a: unknown[]) => Promise<unknown>
    return fn(...wireArgs)
  }

  onReset(listener: () => void): () => void {
    return this.#reset.add(listener)
  }

  recover(_reason: string): void {
    if (this.#closed) return
    const now = this.#now()
    if (now - this.#lastRecover < (this.#options.recoverIntervalMs ?? 1000)) return
    this.#lastRecover = now
    this.#dispose()
    this.#current = this.#connect()
    this.#reset.fire()
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#dispose()
  }

  #connect(): Connection {
    const endpoint = this.#options.open()
    const remote = Comlink.wrap<EngineHostApi>(endpoint.endpoint)
    endpoint.onDeath?.((reason) => this.recover(reason))
    const started = startEngine(remote, this.#options.engineOptions)
    // A failed start surfaces through the calls that await it; this catch only keeps it from being "unhandled".
    started.catch(ignoreUntilAwaited)
    return { endpoint, remote, started }
  }

  #dispose(): void {
    const { endpoint, remote } = this.#current
    try {
      remote[Comlink.releaseProxy]()
    } catch (error) {
      ignoreDisposeFailure(error)
    }
    endpoint.dispose()
  }
}

/** Hands the engine its options (idempotent on the engine's side: only the first tab's options count). */
async function startEngine(remote: RemoteEngine, options: EngineOptions): Promise<void> {
  const result = await remote.init(options)
  if (!result.ok) throw deserializeError(result.error)
}

function ignoreUntilAwaited(): void {}

/** Releasing a proxy whose port is already gone throws; nothing is left to release then. */
function ignoreDisposeFailure(_error: unknown): void {}
