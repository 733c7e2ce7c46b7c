import { describe, expect, it } from 'vitest'
import { decode, encodeChecked, encodeCheckedView, type Value } from '../src'

describe('encodeCheckedView', () => {
  it('gives the bytes of encodeChecked, each view intact until the next encode', () => {
    const values: Value[] = [['k', 1, { fields: [['title', 'x'.repeat(300), 's1']], deleted: null }], ['k'], { a: [1, 2n, true, null, 'é'] }, 'x'.repeat(20_000)]
    for (const value of values) {
      const view = encodeCheckedView(value)
      expect(Buffer.from(view).equals(Buffer.from(encodeChecked(value)))).toBe(true)
      expect(decode(encodeCheckedView(value), { maxFrameBytes: 1 << 20 })).toEqual(value)
    }
  })
})
