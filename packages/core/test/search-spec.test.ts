/**
 * Search specs are checked once where they enter the engine: a valid spec comes back as a
 * copy, every malformed part is refused with a typed error naming it, text with no word is
 * an EmptySearchError, and fields the declaration does not index an UnknownSearchFieldError.
 */
import { describe, expect, it } from 'vitest'
import { EmptySearchError, InvalidKeyError, PredicateError, QueryError, UnknownSearchFieldError, checkSearchFields, deserializeError, hasSearchWord, serializeError, validateSearchDeclaration, validateSearchSpec } from '../src/index'

describe('search specs', () => {
  it('returns a validated copy', () => {
    const input = { map: 'tasks', text: 'milk', fields: ['title'], limit: 5, filter: { eq: ['done', false] }, fuzzy: 0.2, prefix: false, match: 'any' as const, declaration: { fields: ['title', 'notes'] } }
    const spec = validateSearchSpec(input)
    expect(spec).toEqual(input)
    expect(spec.fields).not.toBe(input.fields)
    expect(spec.declaration?.fields).not.toBe(input.declaration.fields)
  })

  it('refuses malformed parts with the typed error that names them', () => {
    const bad: [unknown, new (...args: never[]) => Error, string?][] = [
      [{ map: 'tasks', text: '' }, EmptySearchError],
      [{ map: 'tasks', text: ' -- ' }, EmptySearchError],
      [{ map: 'tasks', text: 42 }, QueryError, 'text'],
      [{ map: 'tasks', text: 'x'.repeat(1_001) }, QueryError, 'text'],
      [{ map: '', text: 'milk' }, InvalidKeyError],
      [{ map: 'tasks', text: 'milk', limit: 1.5 }, QueryError, 'limit'],
      [{ map: 'tasks', text: 'milk', limit: 1_001 }, QueryError, 'limit'],
      [{ map: 'tasks', text: 'milk', fields: [] }, QueryError, 'fields'],
      [{ map: 'tasks', text: 'milk', fields: ['a', 'a'] }, QueryError, 'fields[1]'],
      [{ map: 'tasks', text: 'milk', fuzzy: 1.5 }, QueryError, 'fuzzy'],
      [{ map: 'tasks', text: 'milk', fuzzy: 0 }, QueryError, 'fuzzy'],
      [{ map: 'tasks', text: 'milk', prefix: 'yes' }, QueryError, 'prefix'],
      [{ map: 'tasks', text: 'milk', match: 'some' }, QueryError, 'match'],
      [{ map: 'tasks', text: 'milk', sort: 'title' }, QueryError, 'sort'],
      [{ map: 'tasks', text: 'milk', filter: { eq: ['done'] } }, PredicateError],
      [{ map: 'tasks', text: 'milk', declaration: { fields: 'title' } }, QueryError, 'declaration.fields'],
    ]
    for (const [input, type, path] of bad) {
      const error = (() => {
        try {
          validateSearchSpec(input)
        } catch (caught) {
          return caught
        }
        throw new Error(`accepted ${JSON.stringify(input)}`)
      })()
      expect(error, JSON.stringify(input)).toBeInstanceOf(type)
      if (path !== undefined) expect((error as QueryError).details?.['path']).toBe(path)
    }
  })

  it('declarations, words and indexed fields', () => {
    expect(validateSearchDeclaration({ fields: ['title'] })).toEqual({ fields: ['title'] })
    expect(() => validateSearchDeclaration({ fields: ['title'], boost: 2 })).toThrow(QueryError)
    expect(() => validateSearchDeclaration({ fields: Array.from({ length: 17 }, (_, i) => `f${i}`) })).toThrow(QueryError)
    expect(hasSearchWord('é')).toBe(true)
    expect(hasSearchWord('7')).toBe(true)
    expect(hasSearchWord(' ?! ')).toBe(false)
    expect(() => checkSearchFields('tasks', ['title'], ['title', 'notes'])).not.toThrow()
    expect(() => checkSearchFields('tasks', ['owner'], ['title'])).toThrow(UnknownSearchFieldError)
  })

  it('search errors keep their class and code across the boundary', () => {
    for (const code of ['SEARCH_NOT_DECLARED', 'SEARCH_UNKNOWN_FIELD', 'SEARCH_EMPTY_QUERY', 'SEARCH_INDEX_FULL'] as const) {
      const rebuilt = deserializeError(serializeError(deserializeError({ code, message: 'm' })))
      expect(rebuilt.code).toBe(code)
      expect(rebuilt.name).not.toBe('InternalError')
    }
  })
})
