/**
 * Picks the runtime: a SharedWorker when the browser has one; otherwise a leader tab
 * elected with Web Locks that runs a dedicated worker and serves the other tabs over
 * BroadcastChannel; otherwise the engine runs in the page.
 */
import type { RuntimeMode } from '@outpost/worker'

/** The globals the choice depends on (injected in tests). */
export interface RuntimeGlobals {
  readonly SharedWorker?: unknown
  readonly Worker?: unknown
  readonly BroadcastChannel?: unknown
  readonly navigator?: { readonly locks?: unknown }
}

/** The best runtime the environment supports. */
export function detectMode(globals: RuntimeGlobals = globalThis as RuntimeGlobals): RuntimeMode {
  if (typeof globals.SharedWorker === 'function') return 'shared-worker'
  const locks = globals.navigator?.locks
  if (
    typeof locks === 'object' &&
    locks !== null &&
    typeof globals.BroadcastChannel === 'function' &&
    typeof globals.Worker === 'function'
  ) {
    return 'leader-tab'
  }
  return 'in-page'
}
