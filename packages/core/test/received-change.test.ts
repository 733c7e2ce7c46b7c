/**
 * The check of changes received from a peer (`protocol/received-change.ts`): values and
 * stamps of every kind of change are held to core's rules; a list keeps what passes and
 * names the first refusal with a stable code.
 */
import { describe, expect, it } from 'vitest'
import { InvalidValueError, VALUE_LIMITS, assertReceivedChange, checkReceivedChanges, type Change } from '../src'

const STAMP = '00000000a0-0000-r1'

function nest(levels: number): unknown {
  let value: unknown = 1
  for (let i = 0; i < levels; i++) value = [value]
  return value
}

const lww = (key: string, value: unknown, stamp = STAMP): Change => ({ kind: 'lww', map: 'm', key, state: { fields: [['f', value, stamp]], deleted: null } }) as unknown as Change

describe('assertReceivedChange', () => {
  it('takes well-formed changes of every kind, values at the depth limit included', () => {
    assertReceivedChange(lww('a', nest(VALUE_LIMITS.maxDepth)))
    assertReceivedChange({ kind: 'lww', map: 'm', key: 'd', state: { fields: [], deleted: STAMP } } as unknown as Change)
    assertReceivedChange({ kind: 'or', map: 'm', key: 'o', state: { adds: [[STAMP, { x: [1, 'two'] }]], removes: [STAMP] } } as unknown as Change)
    assertReceivedChange({ kind: 'counter', map: 'c', key: 'n', state: [['r1', 3, 1]] } as unknown as Change)
  })

  it.each([
    ['a NaN value', lww('a', Number.NaN)],
    ['a value nested past the limit', lww('a', nest(VALUE_LIMITS.maxDepth + 1))],
    ['an undefined inside a value', lww('a', [1, undefined])],
    ['a malformed field stamp', lww('a', 1, 'not-a-stamp')],
    ['a malformed tombstone stamp', { kind: 'lww', map: 'm', key: 'd', state: { fields: [], deleted: 'zz' } }],
    ['a malformed OR tag', { kind: 'or', map: 'm', key: 'o', state: { adds: [['bad', 1]], removes: [] } }],
    ['a malformed OR remove', { kind: 'or', map: 'm', key: 'o', state: { adds: [], removes: ['bad'] } }],
    ['a NaN inside an OR value', { kind: 'or', map: 'm', key: 'o', state: { adds: [[STAMP, { x: Number.NaN }]], removes: [] } }],
    ['an infinite counter total', { kind: 'counter', map: 'c', key: 'n', state: [['r1', Number.POSITIVE_INFINITY, 0]] }],
  ])('refuses %s with INVALID_VALUE', (_, change) => {
    expect(() => assertReceivedChange(change as unknown as Change)).toThrow(InvalidValueError)
  })
})

describe('checkReceivedChanges', () => {
  it('returns the list itself when every change passes', () => {
    const list = [lww('a', 1), lww('b', 'two')]
    const result = checkReceivedChanges(list, 'The relay')
    expect(result.accepted).toBe(list)
    expect(result.refused).toBe(0)
    expect(result.error).toBeUndefined()
  })

  it('keeps the changes that pass, in order, and names the first refusal with INVALID_MESSAGE', () => {
    const result = checkReceivedChanges([lww('a', 1), lww('bad', Number.NaN), lww('b', 2), lww('worse', 1, 'x')], 'The relay')
    expect(result.accepted.map((c) => c.key)).toEqual(['a', 'b'])
    expect(result.refused).toBe(2)
    expect(result.error?.code).toBe('INVALID_MESSAGE')
    expect(result.error?.details).toMatchObject({ map: 'm', key: 'bad', reason: 'INVALID_VALUE', refused: 2 })
    expect(result.error?.message).toMatch(/^The relay sent a change to m\/bad that this device refuses .*and 1 more like it/)
  })
})
