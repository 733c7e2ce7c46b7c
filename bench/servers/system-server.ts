/** The seam every system's server implements for the harness. */

/** A running server of one system, seeded and changed through that system's own API. */
export interface SystemServer {
  /** The port it listens on (127.0.0.1). */
  readonly port: number
  /** The URL path a client appends to reach the server (`''` for most). */
  readonly path: string
  /** Stores records 0..n-1 under a new dataset named `name`; resolves with the id a page opens it by. */
  seed(name: string, n: number): Promise<string>
  /** Rewrites records `indexes` of dataset `doc` at revision `rev` on the server side. */
  change(doc: string, indexes: readonly number[], rev: number): Promise<void>
  /** Stops the server. */
  close(): Promise<void>
}

/** The systems compared. */
export const SYSTEMS = ['outpost', 'tinybase', 'yjs', 'automerge'] as const
/** One compared system. */
export type SystemName = (typeof SYSTEMS)[number]
