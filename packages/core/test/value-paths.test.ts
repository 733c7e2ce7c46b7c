/**
 * An invalid value's error names where in it the problem is (`base` plus the indexes and
 * field names down to it), however the walk builds that path.
 */
import { describe, expect, it } from 'vitest'
import { InvalidValueError } from '../src/errors'
import { VALUE_LIMITS, assertRecord, assertStoredValue, assertValue } from '../src/value'

function pathOfError(check: () => void): unknown {
  try {
    check()
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidValueError)
    return (error as InvalidValueError).details?.['path']
  }
  throw new Error('expected an InvalidValueError')
}

describe('value error paths', () => {
  it('name the index and field of the bad part, and only that', () => {
    expect(pathOfError(() => assertValue({ ok: [1, 2], tags: ['a', 'b', NaN] }, 'todos/t1'))).toBe('todos/t1.tags[2]')
    expect(pathOfError(() => assertRecord({ a: 1, b: { c: [{ d: 'x\ud800' }] } }, 'r'))).toBe('r.b.c[0].d')
    expect(pathOfError(() => assertStoredValue({ fields: [['n', 1, 's'], ['m', undefined, 's']], deleted: null }, 'lww:items/k'))).toBe('lww:items/k.fields[1][1]')
    expect(pathOfError(() => assertValue([new Date(Number.NaN)]))).toBe('value[0]')
    expect(pathOfError(() => assertValue({ x: new Map() }, 'v'))).toBe('v.x')
    expect(pathOfError(() => assertValue({ x: { ['\udc00']: 1 } }, 'v'))).toBe('v.x')
  })

  it('name the level where a value nests too deep', () => {
    let deep: unknown = 1
    for (let i = 0; i <= VALUE_LIMITS.maxDepth; i++) deep = [deep]
    expect(pathOfError(() => assertValue(deep, 'v'))).toBe(`v${'[0]'.repeat(VALUE_LIMITS.maxDepth + 1)}`)
  })
})
