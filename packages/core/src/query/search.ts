/**
 * Full-text search specs: what a map declares for indexing ({@link SearchDeclaration})
 * and what one search asks ({@link SearchSpec}), with their validation. The engine checks
 * a spec once, where it enters (`ENGINE_METHODS.subscribeSearch`); the index itself lives
 * in the worker. Pure: no index code here.
 */
import { EmptySearchError, QueryError, UnknownSearchFieldError } from '../errors'
import { assertMapName } from '../keys'
import { validatePredicate } from './predicate'
import type { Predicate } from './types'
import { isPlainObject, own } from './input'

/** Bounds of search declarations and searches. */
export const SEARCH_LIMITS = {
  /** Most fields one map may index. */
  maxFields: 16,
  /** Largest `limit` of one search. */
  maxLimit: 1_000,
  /** `limit` when none is given. */
  defaultLimit: 20,
  /** Longest search text (characters). */
  maxTextLength: 1_000,
  /** Characters of one field's text that are indexed; the rest of a longer text is not searchable. */
  maxFieldChars: 10_000,
  /** Records one map's index holds at most; a map with more fails its searches with `SEARCH_INDEX_FULL`. */
  maxRecords: 250_000,
} as const

/** What a map indexes: `client.map(name, { search: { fields: ['title', 'notes'] } })`. */
export interface SearchDeclaration {
  /** Top-level fields whose text is indexed (strings; numbers and arrays of strings as their text). */
  readonly fields: readonly string[]
}

/** The options of one search (`map.search(text, options)`). */
export interface SearchOptions {
  /** Search only these declared fields (default: all the declaration indexes). */
  readonly fields?: readonly string[]
  /** Most hits, best first (default 20, at most 1,000). */
  readonly limit?: number
  /** Only records that also match this predicate (the `where` language of queries). */
  readonly filter?: Predicate
  /**
   * Tolerates typos: `true` allows an edit distance of 0.2 × the term's length, a number
   * in (0, 1) that fraction, an integer ≥ 1 that many edits. Default: exact terms.
   */
  readonly fuzzy?: boolean | number
  /** Lets each word match terms that start with it (search-as-you-type). Default true. */
  readonly prefix?: boolean
  /** 'all' (default): every word must match; 'any': records matching more words rank higher. */
  readonly match?: 'all' | 'any'
}

/** One search as the engine receives it. */
export interface SearchSpec extends SearchOptions {
  readonly map: string
  /** The map's declaration when the searching handle has one; absent: the engine's current one for the map. */
  readonly declaration?: SearchDeclaration
  readonly text: string
}

const SPEC_KEYS = ['map', 'declaration', 'text', 'fields', 'limit', 'filter', 'fuzzy', 'prefix', 'match'] as const

function fail(path: string, message: string): never {
  throw new QueryError(`Invalid search at ${path}: ${message}`, { path })
}

function fieldList(input: unknown, path: string, min: number): string[] {
  if (!Array.isArray(input)) fail(path, 'expected an array of field names')
  if (input.length < min || input.length > SEARCH_LIMITS.maxFields) fail(path, `expected ${min} to ${SEARCH_LIMITS.maxFields} field names, got ${input.length}`)
  const seen = new Set<string>()
  input.forEach((field: unknown, i) => {
    if (typeof field !== 'string' || field.length === 0) fail(`${path}[${i}]`, 'expected a non-empty field name (string)')
    if (seen.has(field)) fail(`${path}[${i}]`, `${JSON.stringify(field)} is listed twice; list each field once`)
    seen.add(field)
  })
  return [...seen]
}

/** Returns `input` as a validated {@link SearchDeclaration} (a fresh copy), or throws {@link QueryError}. */
export function validateSearchDeclaration(input: unknown, path = 'search'): SearchDeclaration {
  if (!isPlainObject(input)) fail(path, "expected { fields: ['title', ...] }")
  for (const key of Object.keys(input)) if (key !== 'fields') fail(`${path}.${key}`, 'unknown search declaration option; expected "fields"')
  return { fields: fieldList(own(input, 'fields'), `${path}.fields`, 1) }
}

/** True when `text` holds at least one letter or digit (a word to look for). */
export function hasSearchWord(text: string): boolean {
  return /[\p{L}\p{N}]/u.test(text)
}

/**
 * Returns `input` as a validated {@link SearchSpec} (a fresh copy). Throws
 * {@link EmptySearchError} for text with no word, {@link QueryError} for a malformed
 * option, `PredicateError` for a malformed `filter`, and `InvalidKeyError` for a bad map
 * name. Whether the fields are indexed is checked against the index
 * ({@link checkSearchFields}), which only the engine knows.
 */
export function validateSearchSpec(input: unknown): SearchSpec {
  if (!isPlainObject(input)) fail('(root)', 'expected an object { map, text, fields?, limit?, filter?, fuzzy?, prefix?, match? }')
  for (const key of Object.keys(input)) {
    if (!(SPEC_KEYS as readonly string[]).includes(key)) fail(key, `unknown search option ${JSON.stringify(key)}; expected ${SPEC_KEYS.map((k) => `"${k}"`).join(', ')}`)
  }
  const map = own(input, 'map')
  assertMapName(map)
  const text = own(input, 'text')
  if (typeof text !== 'string') fail('text', `expected the search text (a string), got ${typeof text}`)
  if (text.length > SEARCH_LIMITS.maxTextLength) fail('text', `is ${text.length} characters long; at most ${SEARCH_LIMITS.maxTextLength} are searched`)
  if (!hasSearchWord(text)) {
    throw new EmptySearchError('the search text has no word to look for; search for at least one letter or digit (an app shows no results for an empty box instead of searching)', { text })
  }
  const spec: { -readonly [K in keyof SearchSpec]: SearchSpec[K] } = { map, text }
  const declaration = own(input, 'declaration')
  if (declaration !== undefined) spec.declaration = validateSearchDeclaration(declaration, 'declaration')
  const fields = own(input, 'fields')
  if (fields !== undefined) spec.fields = fieldList(fields, 'fields', 1)
  const limit = own(input, 'limit')
  if (limit !== undefined) {
    if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > SEARCH_LIMITS.maxLimit) {
      fail('limit', `expected a positive integer of at most ${SEARCH_LIMITS.maxLimit}, got ${typeof limit === 'number' ? String(limit) : typeof limit}`)
    }
    spec.limit = limit
  }
  const filter = own(input, 'filter')
  if (filter !== undefined) spec.filter = validatePredicate(filter, 'filter')
  const fuzzy = own(input, 'fuzzy')
  if (fuzzy !== undefined) {
    if (typeof fuzzy !== 'boolean' && (typeof fuzzy !== 'number' || !Number.isFinite(fuzzy) || fuzzy <= 0 || (fuzzy >= 1 && !Number.isInteger(fuzzy)) || fuzzy > 3)) {
      fail('fuzzy', 'expected true/false, a fraction in (0, 1) of the term length, or 1, 2 or 3 edits')
    }
    spec.fuzzy = fuzzy
  }
  const prefix = own(input, 'prefix')
  if (prefix !== undefined) {
    if (typeof prefix !== 'boolean') fail('prefix', 'expected true or false')
    spec.prefix = prefix
  }
  const match = own(input, 'match')
  if (match !== undefined) {
    if (match !== 'all' && match !== 'any') fail('match', 'expected "all" or "any"')
    spec.match = match
  }
  return spec
}

/** Throws {@link UnknownSearchFieldError} unless every field of `asked` is in `indexed`. */
export function checkSearchFields(map: string, asked: readonly string[] | undefined, indexed: readonly string[]): void {
  for (const field of asked ?? []) {
    if (!indexed.includes(field)) {
      throw new UnknownSearchFieldError(
        `map "${map}" does not index field ${JSON.stringify(field)}; search one of ${indexed.map((f) => JSON.stringify(f)).join(', ')}, or add it to the map's search declaration (client.map('${map}', { search: { fields: [...] } }))`,
        { map, field, indexed: [...indexed] },
      )
    }
  }
}
