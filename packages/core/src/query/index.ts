/** The predicate and query language shared by live queries (worker) and shapes (relay). */
export type { FieldRef, OrderBy, Predicate, Query, Shape } from './types'
export {
  MATCH_ALL,
  MATCH_NONE,
  PREDICATE_LIMITS,
  andPredicates,
  bindClaims,
  compilePredicate,
  matches,
  predicateFields,
  readField,
  validatePredicate,
} from './predicate'
export type { Claims, CompiledPredicate } from './predicate'
export {
  QUERY_LIMITS,
  canonicalValue,
  compareRows,
  projectRecord,
  runQuery,
  shapeKey,
  validateQuery,
  validateShape,
} from './query'
export type { Row } from './query'
export { QueryView, compileQuery } from './query-view'
export type { CompiledQuery } from './query-view'
export { SEARCH_LIMITS, checkSearchFields, hasSearchWord, validateSearchDeclaration, validateSearchSpec } from './search'
export type { SearchDeclaration, SearchOptions, SearchSpec } from './search'
