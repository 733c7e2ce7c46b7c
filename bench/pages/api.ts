/**
 * What every system's benchmark page exposes as `window.bench`, so the Node harness drives
 * Outpost and each peer through one interface (each page implements it with the system's
 * own documented API). Times are measured inside the page with `performance.now()`.
 */

/** How a page opens its client. */
export interface OpenOptions {
  /** Server URL (through the counting proxy), or null to stay offline. */
  readonly url: string | null
  /** Local database name (IndexedDB). */
  readonly db: string
  /** Document / room / path name on the server (peers that sync whole documents). */
  readonly doc: string
}

/** The per-system page API. */
export interface SystemPage {
  /** Opens the client (persistence first, then the network unless `url` is null). */
  open(options: OpenOptions): Promise<void>
  /** Resolves once `n` records are queryable locally and durable in IndexedDB. */
  waitSynced(n: number): Promise<void>
  /** Writes record `i` at revision `rev` locally. */
  write(i: number, rev: number): Promise<void>
  /**
   * Installs a live observer (Outpost: a live query) for records `indexes` and resolves once
   * it is live; its `done` then resolves with `performance.timeOrigin + performance.now()`
   * when every one of them shows revision `rev`.
   */
  watch(indexes: readonly number[], rev: number): Promise<Armed>
  /** Runs the first query an app would show (records of one group) and resolves with its row count. */
  firstQuery(): Promise<number>
  /** Drops the connection (data stays local). */
  offline(): Promise<void>
  /** Reconnects. */
  online(): Promise<void>
  /** Closes the client. */
  close(): Promise<void>
}

/** A live observer waiting for a revision. */
export interface Armed {
  readonly done: Promise<number>
}

/** The record revision a title carries (`"<rev>:..."`). */
export function revOf(record: unknown): number {
  if (typeof record !== 'object' || record === null) return -1
  const title = (record as { title?: unknown }).title
  if (typeof title !== 'string') return -1
  return Number.parseInt(title, 10)
}

/** The absolute time in ms (comparable across pages of one browser). */
export function absoluteNow(): number {
  return performance.timeOrigin + performance.now()
}

/** Installs `page` as `window.bench`. */
export function install(page: SystemPage): void {
  // When the page's script finished loading (ms since navigation start), for cold-start figures.
  ;(globalThis as unknown as { benchLoadedAt: number }).benchLoadedAt = performance.now()
  ;(globalThis as unknown as { bench: SystemPage }).bench = page
}

/** Waits for `check()` to hold, polling every `everyMs`. */
export async function until(check: () => boolean | Promise<boolean>, everyMs = 2): Promise<void> {
  while (!(await check())) await new Promise((resolve) => setTimeout(resolve, everyMs))
}

/**
 * Resolves with the time at which all `pending` keys were seen at revision `rev`, fed by
 * `onChange(key, record)` calls from the system's observer.
 */
export class RevisionWatch {
  readonly #pending: Set<string>
  readonly #rev: number
  readonly done: Promise<number>
  #resolve: (at: number) => void = () => {}

  constructor(keys: readonly string[], rev: number) {
    this.#pending = new Set(keys)
    this.#rev = rev
    this.done = new Promise((resolve) => {
      this.#resolve = resolve
    })
  }

  /** Feeds one observed record; returns true once every key was seen. */
  seen(key: string, record: unknown): boolean {
    if (this.#pending.has(key) && revOf(record) >= this.#rev) {
      this.#pending.delete(key)
      if (this.#pending.size === 0) this.#resolve(absoluteNow())
    }
    return this.#pending.size === 0
  }
}
