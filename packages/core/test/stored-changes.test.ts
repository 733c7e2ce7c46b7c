/**
 * `changes` frames from stored records (`stored-changes.ts`): for seeded random records
 * (LWW with tombstones, shared and per-field stamps, nested values; OR sets and counters in
 * v1), the frame is byte for byte the one `encodeMessageCounted` gives for the decoded
 * changes, with the same element count, in every wire version; what v2 would not pack is
 * declined (undefined), never guessed.
 */
import { describe, expect, it } from 'vitest'
import { decode, decodeServerMessage, encodeChecked, encodeMessageCounted } from '../src/protocol/codec'
import { PROTOCOL_VERSIONS } from '../src/protocol/messages'
import type { NumberedChangesMessage } from '../src/protocol/shared-frame'
import { encodeStoredChanges, storedRecordKey, type StoredRecords } from '../src/protocol/stored-changes'
import { prng, testSeed } from '../src/testing/random'
import type { Change, CollectionKind, Value } from '../src/types'

type Random = () => number

const pick = <T,>(random: Random, items: readonly T[]): T => items[Math.floor(random() * items.length)] as T

function stamp(random: Random, replicas: readonly string[]): string {
  const wall = 1_700_000_000_000 + Math.floor(random() * 1e9)
  return `${wall.toString(36).padStart(10, '0')}-${Math.floor(random() * 0x10000).toString(16).padStart(4, '0')}-${pick(random, replicas)}`
}

function value(random: Random, depth = 0): Value {
  switch (Math.floor(random() * (depth > 2 ? 7 : 10))) {
    case 0: return null
    case 1: return random() < 0.5
    case 2: return Math.floor(random() * 2 ** (Math.floor(random() * 40))) * (random() < 0.3 ? -1 : 1)
    case 3: return random() * 1e6
    case 4: return pick(random, ['', 'a', 'héllo', '日本語', '🎉 emoji', 'x'.repeat(40), 'y'.repeat(300)])
    case 5: return BigInt(Math.floor(random() * 1e6)) * 10n ** 15n
    case 6: return new Uint8Array(Array.from({ length: Math.floor(random() * 40) }, () => Math.floor(random() * 256)))
    case 7: return Array.from({ length: Math.floor(random() * 6) }, () => value(random, depth + 1))
    case 8: return new Date(Math.floor(random() * 2e12))
    default: {
      const object: Record<string, Value> = {}
      for (let i = Math.floor(random() * 7); i > 0; i--) Object.defineProperty(object, pick(random, ['a', 'b', '__proto__', '', 'constructor', 'long-name-' + i]), { value: value(random, depth + 1), enumerable: true, writable: true, configurable: true })
      return object
    }
  }
}

/** A random state of `kind` as the relay stores it. */
function state(random: Random, kind: CollectionKind, names: readonly string[], replicas: readonly string[]): unknown {
  if (kind === 'or') return { adds: Array.from({ length: Math.floor(random() * 4) }, () => [stamp(random, replicas), value(random)]), removes: random() < 0.5 ? [] : [stamp(random, replicas)] }
  if (kind === 'counter') return Array.from({ length: 1 + Math.floor(random() * 3) }, () => [pick(random, replicas), Math.floor(random() * 100), Math.floor(random() * 100)])
  const deleted = random() < 0.2 ? stamp(random, replicas) : null
  const shared = random() < 0.5 ? stamp(random, replicas) : undefined
  const count = deleted !== null && random() < 0.5 ? 0 : Math.floor(random() * 20)
  const fields = Array.from({ length: count }, (_, i) => [random() < 0.8 ? (names[i % names.length] as string) : pick(random, names), value(random), shared ?? stamp(random, replicas)])
  // Either key order: what a merge builds and what a migration wrote both occur.
  return random() < 0.8 ? { fields, deleted } : { deleted, fields }
}

/** Records stored as the LMDB store keeps them, one after another. */
function stored(states: readonly (readonly [string, number, unknown])[]): StoredRecords {
  const parts = states.map((record) => encodeChecked(record as unknown as Value))
  const offsets = new Uint32Array(parts.length + 1)
  parts.forEach((part, i) => (offsets[i + 1] = (offsets[i] as number) + part.length))
  const bytes = new Uint8Array(offsets[parts.length] as number)
  parts.forEach((part, i) => bytes.set(part, offsets[i] as number))
  return { bytes, offsets, count: parts.length }
}

function changesOf(records: StoredRecords, from: number, to: number, kind: CollectionKind, map: string): Change[] {
  const out: Change[] = []
  for (let r = from; r < to; r++) {
    const [key, , recordState] = decode(records.bytes.subarray(records.offsets[r], records.offsets[r + 1])) as [string, number, unknown]
    out.push({ kind, map, key, state: recordState } as Change)
  }
  return out
}

const message = (sub: number, frame: number, moveOut?: string[]): NumberedChangesMessage =>
  ({ type: 'changes', sub, changes: [], ...(moveOut === undefined ? {} : { moveOut }), paced: true, frame }) as NumberedChangesMessage

describe('encodeStoredChanges', () => {
  it('gives the bytes and element count of encodeMessageCounted for seeded random records (v1 and v2, tombstones included)', () => {
    const seed = testSeed('stored-changes')
    const random = prng(seed)
    let packed = 0
    for (let round = 0; round < 60; round++) {
      const kind: CollectionKind = round % 6 === 4 ? 'or' : round % 6 === 5 ? 'counter' : 'lww'
      const manyNames = round % 10 === 3
      const names = Array.from({ length: manyNames ? 200 : 1 + Math.floor(random() * 8) }, (_, i) => pick(random, ['title', 'done', '', '__proto__', 'naïve', '日本']) + i)
      const replicas = Array.from({ length: 1 + Math.floor(random() * 4) }, (_, i) => `r${i}${'x'.repeat(Math.floor(random() * 30))}`)
      const n = 1 + Math.floor(random() * 60)
      const records = stored(Array.from({ length: n }, (_, i) => [pick(random, ['', '__proto__', 'ключ', 'k']) + i, i + 1, state(random, kind, names, replicas)] as const))
      const from = Math.floor(random() * n)
      const to = from + Math.floor(random() * (n - from + 1))
      const map = pick(random, ['todos', 'm:x', 'карта'])
      const envelope = message(Math.floor(random() * 70_000), 1 + Math.floor(random() * 300), random() < 0.2 ? ['gone', ''] : undefined)
      for (const version of PROTOCOL_VERSIONS) {
        const changes = changesOf(records, from, to, kind, map)
        const expected = encodeMessageCounted({ ...envelope, changes }, version)
        const got = encodeStoredChanges(envelope, records, from, to, kind, map, version)
        if (version >= 2 && kind !== 'lww' && to > from) {
          expect(got, `seed ${seed}`).toBeUndefined()
          continue
        }
        expect(got, `seed ${seed} round ${round} v${version}`).toBeDefined()
        expect(Buffer.from(got?.frame ?? []).equals(Buffer.from(expected.frame)), `seed ${seed} round ${round} v${version}`).toBe(true)
        expect(got?.elements, `seed ${seed} round ${round} v${version}`).toBe(expected.elements)
        expect(decodeServerMessage(got?.frame as Uint8Array, { maxFrameBytes: Infinity, maxElements: Infinity }, version)).toEqual(decodeServerMessage(expected.frame, { maxFrameBytes: Infinity, maxElements: Infinity }, version))
        if (version >= 2) packed++
      }
    }
    expect(packed).toBeGreaterThan(20)
  })

  it('declines in v2 a record whose stamp v2 would not pack (the message travels as in v1 there)', () => {
    const records = stored([['a', 1, { fields: [['x', 1, 'not-a-canonical-stamp']], deleted: null }]])
    expect(encodeStoredChanges(message(1, 1), records, 0, 1, 'lww', 'todos', 2)).toBeUndefined()
    const v1 = encodeStoredChanges(message(1, 1), records, 0, 1, 'lww', 'todos', 1)
    expect(Buffer.from(v1?.frame ?? []).equals(Buffer.from(encodeMessageCounted({ ...message(1, 1), changes: changesOf(records, 0, 1, 'lww', 'todos') }, 1).frame))).toBe(true)
  })

  it('declines a stored form it does not know', () => {
    const records = stored([['a', 1, { fields: [], deleted: null, extra: 1 }]])
    expect(encodeStoredChanges(message(1, 1), records, 0, 1, 'lww', 'todos', 2)).toBeUndefined()
    const notRecord = stored([['a', 1] as unknown as [string, number, unknown]])
    expect(encodeStoredChanges(message(1, 1), notRecord, 0, 1, 'lww', 'todos', 1)).toBeUndefined()
  })

  it('reads a stored record\'s key', () => {
    const records = stored([['ключ 🎉', 3, { fields: [], deleted: null }]])
    expect(storedRecordKey(records.bytes)).toBe('ключ 🎉')
  })
})
