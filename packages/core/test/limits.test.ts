/**
 * Frame limits: what one change may weigh, and cutting many items into frames that fit.
 * Sizes are exact (the encoder's), so a batch packed under a budget always decodes under
 * the same limits.
 */
import { describe, expect, it } from 'vitest'
import { ValueTooLargeError } from '../src/errors'
import { decode, encodeMessage, measure } from '../src/protocol/codec'
import { DEFAULT_WIRE_LIMITS, FRAME_ENVELOPE, assertChangeFits, itemBudget, keySize, packBySize } from '../src/protocol/limits'
import type { Change } from '../src/types'
import { prng, testSeed } from '../src/testing/random'
import { sampleChange } from '../src/testing/sample-messages'

function blob(map: string, key: string, bytes: number): Change {
  return { kind: 'lww', map, key, state: { fields: [['body', 'x'.repeat(bytes), '0000000001-0000-r1' as never]], deleted: null } }
}

describe('assertChangeFits', () => {
  it('accepts a change up to the budget and refuses one byte more, naming the limit', () => {
    const limits = { maxFrameBytes: 128 * 1024, maxElements: DEFAULT_WIRE_LIMITS.maxElements }
    const budget = itemBudget(limits).bytes
    const overhead = measure(blob('m', 'k', 0)).bytes
    // String headers grow with the length: find the largest body that still fits.
    let n = budget - overhead - 8
    while (measure(blob('m', 'k', n + 1)).bytes <= budget) n++
    expect(assertChangeFits(blob('m', 'k', n), limits, 'm/k').bytes).toBe(budget)
    let thrown: unknown
    try {
      assertChangeFits(blob('m', 'k', n + 1), limits, 'm/k')
    } catch (error) {
      thrown = error
    }
    expect(thrown).toBeInstanceOf(ValueTooLargeError)
    expect((thrown as ValueTooLargeError).code).toBe('VALUE_TOO_LARGE')
    expect((thrown as ValueTooLargeError).details).toMatchObject({ limitBytes: budget, maxFrameBytes: limits.maxFrameBytes })
    expect((thrown as Error).message).toContain(String(budget))
  })

  it('refuses a change with more elements than a frame may hold', () => {
    const many: Change = { kind: 'lww', map: 'm', key: 'k', state: { fields: [['list', Array.from({ length: 5_000 }, (_, i) => i), '0000000001-0000-r1' as never]], deleted: null } }
    expect(() => assertChangeFits(many, { maxFrameBytes: 1024 * 1024, maxElements: 4_096 }, 'm/k')).toThrow(/array items and map entries/)
  })
})

describe('packBySize', () => {
  it('cuts changes into frames that each decode under the limits, keeps order, and reports what cannot fit', () => {
    const seed = testSeed('limits-pack')
    const random = prng(seed)
    const limits = { maxFrameBytes: 96 * 1024, maxElements: 2_000 }
    const items: Change[] = []
    for (let i = 0; i < 300; i++) items.push(blob('m', `k${i}`, Math.floor(random() * random() * 40_000)))
    items.splice(17, 0, blob('m', 'huge', 200_000))
    const oversize: string[] = []
    const batches = [...packBySize(items, measure, itemBudget(limits), 1_000, (item) => oversize.push(item.key))]
    expect(oversize).toEqual(['huge'])
    expect(batches.flat().map((c) => c.key)).toEqual(items.filter((c) => c.key !== 'huge').map((c) => c.key))
    for (const batch of batches) {
      const frame = encodeMessage({ type: 'changes', sub: 4_000_000, changes: batch, paced: true })
      expect(frame.length).toBeLessThanOrEqual(limits.maxFrameBytes)
      expect(() => decode(frame, { maxFrameBytes: limits.maxFrameBytes, maxElements: limits.maxElements })).not.toThrow()
    }
    // Frames are full, not cut by count: fewer frames than a 2,000-record-per-frame rule would need bytes for.
    expect(batches.length).toBeGreaterThan(1)
  })

  it('counts each item as an entry of the list it goes into, so frames cut by elements decode', () => {
    // Small changes: the element limit binds long before the byte limit.
    const limits = { maxFrameBytes: 1024 * 1024, maxElements: 4_096 }
    const items = Array.from({ length: 3_000 }, (_, i) => sampleChange('m', `k${i}`))
    for (const batch of packBySize(items, measure, itemBudget(limits), 10_000)) {
      const frame = encodeMessage({ type: 'changes', sub: 1, changes: batch })
      expect(() => decode(frame, { maxFrameBytes: limits.maxFrameBytes, maxElements: limits.maxElements })).not.toThrow()
    }
  })

  it('honours the count limit', () => {
    const batches = [...packBySize(Array.from({ length: 10 }, (_, i) => sampleChange('m', `k${i}`)), measure, itemBudget(DEFAULT_WIRE_LIMITS), 4)]
    expect(batches.map((b) => b.length)).toEqual([4, 4, 2])
  })
})

describe('keySize', () => {
  it('equals the encoded size of a key in a list, for ASCII, multi-byte and astral keys', () => {
    for (const key of ['', 'a', 'x'.repeat(31), 'x'.repeat(32), 'é'.repeat(200), '日本'.repeat(30_000), '😀 x', 'z'.repeat(70_000)]) {
      expect(keySize(key).bytes).toBe(measure(key).bytes)
    }
    expect(FRAME_ENVELOPE.bytes).toBeGreaterThan(0)
  })
})
