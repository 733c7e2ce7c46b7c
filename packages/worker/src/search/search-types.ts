/** The types of full-text search that cross the engine boundary (the index is in `search-index.ts`). */
import type { RecordValue } from '@outpost/core'

export type { SearchDeclaration, SearchOptions, SearchSpec } from '@outpost/core'

/** One hit of a live search, best first. */
export interface SearchHit {
  readonly key: string
  readonly value: RecordValue
  /** MiniSearch's BM25+ score: only the order means something; updated when the hits' keys or records change. */
  readonly score: number
  /** The indexed terms that matched (after prefix and fuzzy expansion), lowercase. */
  readonly terms: readonly string[]
}
