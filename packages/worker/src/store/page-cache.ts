/**
 * A page kept in memory in its stored (compact, `page-codec.ts`) layout, with the indexes
 * that let a commit change a few of its records in place: no read-back from IndexedDB and
 * no decode/re-encode of the records it does not touch.
 *
 * A single-record write used to read its page back (up to {@link PAGE_MAX_RECORDS} records),
 * decode it, apply the write and encode the whole page again; with a cached page it encodes
 * the one record, updates the page's stamp and field-name tables, and hands the same arrays
 * to `put` (IndexedDB clones the value synchronously inside `put`, so later changes to the
 * arrays never reach what was stored).
 *
 * Records are laid out exactly as `encodePage` lays them out, so a cached page IS a valid
 * stored page; only the order of keys may differ (a delete moves the last record into the
 * hole), which the layout allows (pages are unordered; scans sort).
 *
 * Values written into a cached page are copied (objects only, with `structuredClone`) so a
 * caller changing its object after the commit can never change what a later rewrite of the
 * page stores. Pure: no I/O.
 */
import type { Value } from '@outpost/core'
import { forEachInPage, isLwwRecord, type StoredPage } from './page-codec'

/** A stored page plus the indexes for in-place updates. */
export class CachedPage {
  readonly k: string[] = []
  readonly e: unknown[] = []
  s: string[] = []
  n: string[] = []
  readonly #pos = new Map<string, number>()
  #stampIndex = new Map<string, number>()
  #nameIndex = new Map<string, number>()

  /** A cached copy of a page read from IndexedDB (owned: the read produced fresh objects). */
  static fromStored(page: StoredPage): CachedPage {
    const out = new CachedPage()
    out.#adopt(page)
    return out
  }

  #adopt(page: StoredPage): void {
    // Reuses the stored arrays' contents: the entries of a page read from IndexedDB are this
    // store's own objects, and a stored entry is already in its final compact form.
    this.k.length = 0
    this.e.length = 0
    this.#pos.clear()
    this.s = [...page.s]
    this.n = [...page.n]
    this.#stampIndex = new Map(this.s.map((stamp, i) => [stamp, i]))
    this.#nameIndex = new Map(this.n.map((name, i) => [name, i]))
    for (let i = 0; i < page.k.length; i++) {
      this.#pos.set(page.k[i] as string, i)
      this.k.push(page.k[i] as string)
      this.e.push(page.e[i])
    }
  }

  /** Number of records. */
  get size(): number {
    return this.k.length
  }

  /** The page as a stored value (shares this page's arrays: put it, do not keep it). */
  get stored(): StoredPage {
    return { k: this.k, s: this.s, n: this.n, e: this.e }
  }

  /** The page's records, decoded (for a split). */
  entries(): Map<string, Value> {
    const out = new Map<string, Value>()
    forEachInPage(this.stored, (key, value) => out.set(key, value))
    return out
  }

  #stamp(value: string): number {
    return slotOf(this.s, this.#stampIndex, value)
  }

  #name(value: string): number {
    return slotOf(this.n, this.#nameIndex, value)
  }

  /** Sets `key` to a copy of `value`, encoding only this record. */
  put(key: string, value: Value): void {
    let entry: unknown
    if (isLwwRecord(value)) {
      const flat: unknown[] = [value.deleted === null ? -1 : this.#stamp(value.deleted)]
      for (const [name, fieldValue, fieldStamp] of value.fields) flat.push(this.#name(name), ownCopy(fieldValue), this.#stamp(fieldStamp))
      entry = flat
    } else {
      entry = { v: ownCopy(value) }
    }
    const at = this.#pos.get(key)
    if (at === undefined) {
      this.#pos.set(key, this.k.push(key) - 1)
      this.e.push(entry)
    } else {
      this.e[at] = entry
    }
  }

  /** Removes `key` (the last record moves into its slot). */
  delete(key: string): void {
    const at = this.#pos.get(key)
    if (at === undefined) return
    this.#pos.delete(key)
    const last = this.k.length - 1
    if (at !== last) {
      const lastKey = this.k[last] as string
      this.k[at] = lastKey
      this.e[at] = this.e[last]
      this.#pos.set(lastKey, at)
    }
    this.k.pop()
    this.e.pop()
  }

  /**
   * Drops stamps and field names no record refers to any more, once they outnumber the
   * live ones (each rewrite of a record may leave its old stamp behind): amortized, a
   * table never grows past about twice what the page needs.
   */
  compactIfBloated(): void {
    if (this.s.length <= 2 * this.k.length + 32 && this.n.length <= 2 * this.k.length + 32) return
    const usedStamps = new Map<number, number>()
    const usedNames = new Map<number, number>()
    const s: string[] = []
    const n: string[] = []
    const remap = (table: Map<number, number>, from: string[], to: string[], i: number): number => {
      let j = table.get(i)
      if (j === undefined) {
        j = to.push(from[i] as string) - 1
        table.set(i, j)
      }
      return j
    }
    for (let r = 0; r < this.e.length; r++) {
      const entry = this.e[r]
      if (!Array.isArray(entry)) continue
      const flat = entry.slice()
      if ((flat[0] as number) >= 0) flat[0] = remap(usedStamps, this.s, s, flat[0] as number)
      for (let j = 1; j < flat.length; j += 3) {
        flat[j] = remap(usedNames, this.n, n, flat[j] as number)
        flat[j + 2] = remap(usedStamps, this.s, s, flat[j + 2] as number)
      }
      this.e[r] = flat
    }
    this.s = s
    this.n = n
    this.#stampIndex = new Map(s.map((stamp, i) => [stamp, i]))
    this.#nameIndex = new Map(n.map((name, i) => [name, i]))
  }
}

/** `value` itself when it is immutable (a primitive), else a deep copy the cache owns. */
function ownCopy<T>(value: T): T {
  return typeof value === 'object' && value !== null ? structuredClone(value) : value
}

/**
 * Cached pages by id, least recently used evicted first once they hold more than
 * `maxRecords` records in all (the engine keeps its maps in memory anyway; this bounds the
 * copy of the page tables and of object field values).
 */
export class PageCache {
  /** id → the page and its size when it was (re)cached. */
  readonly #pages = new Map<string, { page: CachedPage; size: number }>()
  #records = 0

  constructor(readonly maxRecords: number) {}

  /** The cached page `id`, marked most recently used. */
  get(id: string): CachedPage | undefined {
    const held = this.#pages.get(id)
    if (held === undefined) return undefined
    this.#pages.delete(id)
    this.#pages.set(id, held)
    return held.page
  }

  /** Keeps `page` under `id` (after a commit wrote it), evicting the least recently used beyond the bound. */
  set(id: string, page: CachedPage): void {
    this.delete(id)
    this.#pages.set(id, { page, size: page.size })
    this.#records += page.size
    for (const [oldId, old] of this.#pages) {
      if (this.#records <= this.maxRecords || oldId === id) break
      this.#pages.delete(oldId)
      this.#records -= old.size
    }
  }

  /** Forgets page `id` (deleted, split, or its transaction failed). */
  delete(id: string): void {
    const held = this.#pages.get(id)
    if (held === undefined) return
    this.#pages.delete(id)
    this.#records -= held.size
  }

  /** Number of cached pages (for tests). */
  get size(): number {
    return this.#pages.size
  }
}

/** `value`'s position in `table` (a page's stamp or field-name table), appended when new. */
function slotOf(table: string[], index: Map<string, number>, value: string): number {
  let i = index.get(value)
  if (i === undefined) {
    i = table.push(value) - 1
    index.set(value, i)
  }
  return i
}
