/** What every workload receives from the harness. */
import type { CountingProxy } from './counting-proxy'
import type { SystemName, SystemServer } from '../servers/system-server'
import type { Cell, Column, ResultRow } from './results'
import type { Repeats } from './stats'

/** A system's server reached through its byte-counting proxy. */
export interface ProxiedServer {
  readonly server: SystemServer
  readonly proxy: CountingProxy
  /** The URL a browser page connects to (through the proxy). */
  readonly url: string
}

/** The harness state a workload runs in. */
export interface BenchContext {
  /** `--quick`: smaller sizes and fewer samples. */
  readonly quick: boolean
  readonly repeats: Repeats
  /** Origin serving the built pages. */
  readonly origin: string
  /** Every system's server, or why it could not start. */
  readonly servers: ReadonlyMap<SystemName, ProxiedServer | { readonly unavailable: string }>
  /** Directory of the repository root. */
  readonly root: string
  /** Progress output (stderr). */
  log(message: string): void
  /**
   * Adds a markdown section to the report after the main table, for a workload whose
   * figures compare configurations of Outpost rather than systems (e.g. scale-out).
   */
  addSection?(markdown: string): void
}

/** A workload: runs and returns its rows. */
export type Workload = (context: BenchContext) => Promise<ResultRow[]>

/**
 * The running server of `system`, or undefined after recording why it is not available in
 * `unavailable` (its column then shows that reason instead of figures).
 */
export function serverFor(context: BenchContext, system: SystemName, unavailable: Partial<Record<Column, Cell>>): ProxiedServer | undefined {
  const proxied = context.servers.get(system)
  if (proxied === undefined || 'unavailable' in proxied) {
    unavailable[system] = { unavailable: proxied?.unavailable ?? 'no server' }
    return undefined
  }
  return proxied
}
