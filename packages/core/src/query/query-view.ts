/**
 * A live query result over one map, maintained incrementally: every matching row is kept
 * in `orderBy` order (ties by key) in a list of small sorted chunks, found by binary
 * search, so a write costs O(log n) comparisons plus a splice of one chunk, never a rescan
 * of the map. The visible result is the first `limit` rows. This is what lets a local write reach its live
 * queries in well under a millisecond.
 */
import { InternalError } from '../errors'
import type { RecordValue } from '../types'
import { valuesEqual } from '../value'
import { compilePredicate, type CompiledPredicate } from './predicate'
import { compareRows, type Row } from './query'
import type { Query } from './types'

/** Largest chunk of the sorted row list; a full chunk splits in two. */
const MAX_CHUNK = 512

/**
 * A (validated) query with its predicate and row order compiled: what evaluating it needs,
 * made once and shared by every view of the query (e.g. each optimistic projection a tab
 * builds over the worker's rows), so none of them compiles it again.
 */
export interface CompiledQuery {
  readonly query: Query
  /** `where`, compiled. */
  readonly test: CompiledPredicate
  /** `orderBy`, ties by key. */
  readonly compare: (a: Row, b: Row) => number
  /** `limit`, or `Infinity`. */
  readonly limit: number
}

/** Compiles a (validated) query once; see {@link CompiledQuery}. */
export function compileQuery(query: Query): CompiledQuery {
  return { query, test: compilePredicate(query.where), compare: compareRows(query.orderBy), limit: query.limit ?? Number.POSITIVE_INFINITY }
}

function isCompiled(query: Query | CompiledQuery): query is CompiledQuery {
  return typeof (query as Partial<CompiledQuery>).test === 'function'
}

/** An incrementally maintained live query result; see the module comment. */
export class QueryView {
  /** The (validated) query this view maintains. */
  readonly query: Query
  readonly #test: CompiledPredicate
  readonly #compare: (a: Row, b: Row) => number
  readonly #limit: number
  /**
   * Every matching row, sorted, split into non-empty chunks of at most {@link MAX_CHUNK}
   * rows: a write splices one small chunk instead of moving a 100,000-row array (which
   * V8 sometimes copies whole, costing far more than the binary searches).
   */
  #chunks: Row[][] = []
  #count = 0
  /** The current row of every matching key, so an update finds its old position. */
  readonly #byKey = new Map<string, Row>()
  #visible: readonly Row[] | undefined

  /** `query` is a validated query, or one compiled by {@link compileQuery} (then nothing is compiled again). */
  constructor(query: Query | CompiledQuery) {
    const compiled = isCompiled(query) ? query : compileQuery(query)
    this.query = compiled.query
    this.#test = compiled.test
    this.#compare = compiled.compare
    this.#limit = compiled.limit
  }

  /**
   * Replaces the view's contents with `rows` (e.g. the map's records at subscription time);
   * a later duplicate key wins. Rows already in order (e.g. another view's result) are not
   * sorted again: checking the order costs one comparison per row.
   */
  load(rows: Iterable<Row>): void {
    this.#byKey.clear()
    for (const { key, value } of rows) {
      if (this.#test(value)) this.#byKey.set(key, { key, value })
      else this.#byKey.delete(key)
    }
    const sorted = [...this.#byKey.values()]
    if (!isSorted(sorted, this.#compare)) sorted.sort(this.#compare)
    this.#chunks = []
    for (let i = 0; i < sorted.length; i += MAX_CHUNK / 2) this.#chunks.push(sorted.slice(i, i + MAX_CHUNK / 2))
    this.#count = sorted.length
    this.#visible = undefined
  }

  /**
   * Applies a write to `key`: `value` is its record now, or `undefined` when it is deleted
   * (or no longer visible). Returns true when the visible result changed.
   */
  apply(key: string, value: RecordValue | undefined): boolean {
    const previous = this.#byKey.get(key)
    const matches = value !== undefined && this.#test(value)
    if (previous === undefined && !matches) return false
    if (previous !== undefined && matches && valuesEqual(previous.value, value)) return false

    let changed = false
    if (previous !== undefined) {
      if (this.#remove(previous) < this.#limit) changed = true
      this.#byKey.delete(key)
    }
    if (matches) {
      const row: Row = { key, value }
      if (this.#insert(row) < this.#limit) changed = true
      this.#byKey.set(key, row)
    }
    if (changed) this.#visible = undefined
    return changed
  }

  /** Removes `key` (same as `apply(key, undefined)`). */
  delete(key: string): boolean {
    return this.apply(key, undefined)
  }

  /** The visible result: matching rows in order, at most `limit`. The same array until the result changes. */
  rows(): readonly Row[] {
    if (this.#visible === undefined) {
      const out: Row[] = []
      for (const chunk of this.#chunks) {
        for (const row of chunk) {
          if (out.length >= this.#limit) break
          out.push(row)
        }
        if (out.length >= this.#limit) break
      }
      this.#visible = Object.freeze(out)
    }
    return this.#visible
  }

  /** The row of `key` while it matches (within `limit` or past it), or `undefined`. */
  get(key: string): Row | undefined {
    return this.#byKey.get(key)
  }

  /** Number of matching rows, including those beyond `limit`. */
  get matchCount(): number {
    return this.#count
  }

  /** True when `key` is in the visible result. */
  isVisible(key: string): boolean {
    const row = this.#byKey.get(key)
    if (row === undefined) return false
    const [c, i] = this.#locate(row)
    return this.#rank(c, i) < this.#limit
  }

  /** Inserts a row; returns its rank (capped: any rank at or past `limit` may be reported as `limit`). */
  #insert(row: Row): number {
    this.#count++
    if (this.#chunks.length === 0) {
      this.#chunks.push([row])
      return 0
    }
    const [c, i] = this.#locate(row)
    const chunk = this.#chunks[c] as Row[]
    chunk.splice(i, 0, row)
    const rank = this.#rank(c, i)
    if (chunk.length > MAX_CHUNK) this.#chunks.splice(c + 1, 0, chunk.splice(MAX_CHUNK / 2))
    return rank
  }

  /** Removes a row known to be present; returns its rank (capped like {@link QueryView.#insert}). */
  #remove(row: Row): number {
    const [c, i] = this.#locate(row)
    const chunk = this.#chunks[c]
    if (chunk?.[i] !== row) {
      throw new InternalError('QueryView index out of sync: a row was mutated after it was applied', { key: row.key })
    }
    const rank = this.#rank(c, i)
    chunk.splice(i, 1)
    if (chunk.length === 0) this.#chunks.splice(c, 1)
    this.#count--
    return rank
  }

  /** Rank of position `i` in chunk `c`, counting at most up to `limit` (so a small window costs little). */
  #rank(c: number, i: number): number {
    // Without a limit every row is visible: the exact rank does not matter.
    if (this.#limit === Number.POSITIVE_INFINITY) return 0
    let rank = i
    for (let k = 0; k < c && rank < this.#limit; k++) rank += (this.#chunks[k] as Row[]).length
    return rank
  }

  /** Chunk and index of the first row that does not sort before `row` (chunk clamped to the last one). */
  #locate(row: Row): [chunk: number, index: number] {
    const chunks = this.#chunks
    // The first chunk whose last row does not sort before `row`.
    let lo = 0
    let hi = chunks.length - 1
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      const chunk = chunks[mid] as Row[]
      if (this.#compare(chunk[chunk.length - 1] as Row, row) < 0) lo = mid + 1
      else hi = mid
    }
    const chunk = chunks[lo] as Row[]
    let a = 0
    let b = chunk.length
    while (a < b) {
      const mid = (a + b) >>> 1
      if (this.#compare(chunk[mid] as Row, row) < 0) a = mid + 1
      else b = mid
    }
    return [lo, a]
  }
}

/** True when every row sorts strictly after the one before it. */
function isSorted(rows: readonly Row[], compare: (a: Row, b: Row) => number): boolean {
  for (let i = 1; i < rows.length; i++) if (compare(rows[i - 1] as Row, rows[i] as Row) >= 0) return false
  return true
}
