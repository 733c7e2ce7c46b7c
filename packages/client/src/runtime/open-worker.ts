/**
 * Starts the SDK's own workers. The `new SharedWorker(new URL(..., import.meta.url))`
 * form is what Vite (and other bundlers) recognize to bundle the worker entry, so it must
 * stay literal here.
 */
import type { EngineEndpoint } from '../engine/comlink-transport'
import { sharedWorkerName } from './names'

/** Connects to (starting if needed) the SharedWorker for `name`, or to the one `create` makes. */
export function openSharedWorker(name: string, create?: () => SharedWorker, schemaVersions?: Readonly<Record<string, number>>): EngineEndpoint {
  const worker =
    create?.() ??
    new SharedWorker(new URL('../worker-entry.js', import.meta.url), { type: 'module', name: sharedWorkerName(name, schemaVersions) })
  return {
    endpoint: worker.port,
    onDeath: (listener) => worker.addEventListener('error', () => listener('the SharedWorker raised an error')),
    dispose: () => worker.port.close(),
  }
}

/** Starts the dedicated worker a leader tab runs the engine in. */
export function openDedicatedWorker(name: string, create?: () => Worker): EngineEndpoint {
  const worker =
    create?.() ??
    new Worker(new URL('../dedicated-worker-entry.js', import.meta.url), { type: 'module', name: sharedWorkerName(name) })
  return {
    endpoint: worker,
    onDeath: (listener) => worker.addEventListener('error', () => listener('the worker raised an error')),
    dispose: () => worker.terminate(),
  }
}
