/**
 * Worker entry points. `startSharedWorker` registers `connect` synchronously (a tab's
 * first message must never find no listener) and creates the engine lazily, with the
 * options of the first tab that calls `init`. `startDedicatedWorker` serves one port (the
 * leader tab's) the same way, for the Web Locks fallback. An app that owns its worker
 * entry writes:
 *
 *   import { startSharedWorker } from '@outpost/worker'
 *   startSharedWorker()
 */
import * as Comlink from 'comlink'
import { serializeError } from '@outpost/core'
import type { EngineApi, EngineInitOptions, EngineStatus, Result } from './engine-api'
import { createEngine, type CreateEngineOptions, type Engine } from './engine'
import { createTabApi } from './expose'

/** The few members of a SharedWorker global scope this module uses (declared locally: lib has no WebWorker). */
export interface SharedWorkerScopeLike {
  onconnect: ((event: { readonly ports: readonly MessagePort[] }) => void) | null
}

/** The few members of a dedicated worker scope this module uses. */
export type DedicatedWorkerScopeLike = Comlink.Endpoint

/** Extra engine options a host adds to every tab's `init` options (e.g. a WebSocket implementation in tests). */
export type HostEngineOptions = Omit<CreateEngineOptions, keyof EngineInitOptions>

/** Creates the engine once, on the first `init`; later `init` calls wait for the same engine. */
function lazyEngine(extra: HostEngineOptions): {
  getEngine: () => Promise<EngineApi | undefined>
  init: (options: EngineInitOptions) => Promise<Result<EngineStatus>>
} {
  let engine: Engine | undefined
  return {
    getEngine: async () => engine,
    init: async (options) => {
      try {
        engine ??= createEngine({ ...extra, ...options })
        return await engine.ready()
      } catch (error) {
        return { ok: false, error: serializeError(error) }
      }
    },
  }
}

/** Runs the engine in a SharedWorker: every connecting tab gets the comlink API on its port. */
export function startSharedWorker(scope: SharedWorkerScopeLike = globalThis as unknown as SharedWorkerScopeLike, extra: HostEngineOptions = {}): void {
  const host = lazyEngine(extra)
  scope.onconnect = (event) => {
    const port = event.ports[0]
    if (port === undefined) return
    Comlink.expose(createTabApi(host.getEngine, host.init), port)
  }
}

/** Runs the engine in a dedicated worker (the leader tab's, in the Web Locks fallback). */
export function startDedicatedWorker(scope: DedicatedWorkerScopeLike = globalThis as unknown as DedicatedWorkerScopeLike, extra: HostEngineOptions = {}): void {
  const host = lazyEngine(extra)
  Comlink.expose(createTabApi(host.getEngine, host.init), scope)
}
