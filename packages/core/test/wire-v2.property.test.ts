/**
 * Property tests of wire v2 (packed change lists). Seeded: the seed is printed, and
 * OUTPOST_SEED replays a run; OUTPOST_PROPERTY_RUNS sets the runs per property (default 300).
 *
 * Properties:
 *  - round trip: any batch of valid changes (LWW records with shared or per-field stamps
 *    and tombstones, OR sets, counters; keys and field names such as `__proto__`,
 *    `constructor` and `""`; every value type; canonical and non-canonical stamps) decodes
 *    from v2 to exactly the message that was sent, as it does from v1;
 *  - size: a v2 frame is never larger than the v1 frame of the same message and holds no
 *    more elements (beyond its header's seven), also for batches built to defeat the
 *    tables (hundreds of replicas and field names, walls far apart, large counters), so
 *    frames cut by v1 sizes (`packBySize` + `measure`) fit the byte and element limits;
 *  - whole-list sizes: `measureTotal` of a list is exactly the sum of `measure` of its items,
 *    and `packListBySize` (the relay's shortcut: one encoding per page) cuts frames that
 *    fit the limits, the whole list as one frame exactly when `packBySize` would;
 *  - same verdict: a batch with changes that break the change schema's rules is accepted
 *    or refused exactly as in v1 (whole `changes` message; one change of an `ops` batch);
 *  - hostile input: mutated v2 frames (bytes, and packed structure) throw nothing but
 *    FRAME_TOO_LARGE, DECODE_LIMIT, DECODE_FAILED or INVALID_MESSAGE, and whatever they
 *    decode to passes the change schema.
 * It also prints the v2/v1 size ratio for 200-byte records with six fields (bench/lib/data.ts).
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { MAX_WALL, encodeStamp } from '../src/clock'
import { OutpostError } from '../src/errors'
import { DEFAULT_CODEC_LIMITS, decode, decodeClientMessage, decodeServerMessage, encode, encodeMessage, measure, parseChange, scanFrame } from '../src/protocol/codec'
import { FRAME_ENVELOPE, measureTotal, packBySize, packListBySize } from '../src/protocol/limits'
import { changeSchema, type ChangesMessage, type OpsMessage } from '../src/protocol/messages'
import { prng, testSeed } from '../src/testing/random'
import { valueDifference } from '../src/testing/store-suite'
import type { Change, CounterState, ReplicaId, Stamp, Value } from '../src/types'

const SEED = testSeed('wire-v2 properties')
const RUNS = Math.max(1, Number(process.env['OUTPOST_PROPERTY_RUNS'] ?? 300))

/** Runs a property with the file's seed; a failure names the seed to replay. */
function check<T>(property: fc.IProperty<T>, runs = RUNS): void {
  const result = fc.check(property, { seed: SEED, numRuns: runs })
  // The counterexample of a wide batch runs to megabytes: keep the report readable.
  if (result.failed) throw new Error(`property failed; replay with OUTPOST_SEED=${SEED}\n${String(result.errorInstance).slice(0, 1000)}\n${(fc.defaultReportMessage(result) ?? '').slice(0, 3000)}`)
}

/** An object whose every key is an own data property (`__proto__` included). */
function objectOf(entries: readonly (readonly [string, unknown])[]): Record<string, unknown> {
  const object: Record<string, unknown> = {}
  for (const [key, value] of entries) Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true })
  return object
}

const text = (maxLength: number): fc.Arbitrary<string> => fc.string({ unit: 'grapheme', maxLength })
const specialName = fc.constantFrom('__proto__', 'constructor', 'prototype', '', 'toString', 'title')
const fieldName = fc.oneof(specialName, text(8))
const key = fc.oneof(specialName, text(12))
const mapName = fc.oneof(fc.constantFrom('todos', '__proto__', 'm'), text(10).filter((name) => name.length > 0))
const replica = fc.oneof(fc.constantFrom('device-4f2a9c1e', 'r', 'relay', 'x-y-z', 'ü'.repeat(128)), fc.string({ unit: 'grapheme', minLength: 1, maxLength: 12 }).filter((r) => r.length <= 128))

// Walls near one another (small deltas) and anywhere in range (large ones, both signs).
const wall = fc.oneof(fc.integer({ min: 1_700_000_000_000, max: 1_700_000_000_300 }), fc.integer({ min: 0, max: MAX_WALL }))
const canonicalStamp: fc.Arbitrary<Stamp> = fc
  .record({ wall, counter: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 0xffff })), replica })
  .map((parts) => encodeStamp({ ...parts, replica: parts.replica as ReplicaId }))
// Strings the schema takes as stamps though no clock wrote them: they travel as they are.
const oddStamp = fc.oneof(
  fc.string({ minLength: 1, maxLength: 24 }),
  fc.constantFrom('ZZZZZZZZZZ-0000-a', '0000000000-000G-a', '0000000000-0000-', `0000000000-0000-${'r'.repeat(129)}`, '0000000000-0000-a'.toUpperCase()),
) as fc.Arbitrary<Stamp>
const stamp = fc.oneof({ weight: 6, arbitrary: canonicalStamp }, { weight: 1, arbitrary: oddStamp })

const value: fc.Arbitrary<Value> = fc.letrec<{ value: Value }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.double().filter((n) => !Object.is(n, -0)),
    fc.bigInt(),
    text(20),
    fc.date({ noInvalidDate: true }),
    fc.uint8Array({ maxLength: 8 }),
    fc.array(tie('value'), { maxLength: 3 }),
    fc.array(fc.tuple(fieldName, tie('value')), { maxLength: 3 }).map((entries) => objectOf(entries) as Value),
  ),
})).value

/** Changes of each kind whose stamps come from `stamp`. */
function changeOf(stamp: fc.Arbitrary<Stamp>): fc.Arbitrary<Change> {
  const lww: fc.Arbitrary<Change> = fc
    .record({
      map: mapName,
      key,
      names: fc.array(fieldName, { maxLength: 6 }),
      values: fc.array(value, { minLength: 6, maxLength: 6 }),
      shared: fc.boolean(),
      stamps: fc.array(stamp, { minLength: 6, maxLength: 6 }),
      deleted: fc.option(stamp),
    })
    .map(({ map, key, names, values, shared, stamps, deleted }) => ({
      kind: 'lww' as const,
      map,
      key,
      state: { fields: names.map((name, i) => [name, values[i] as Value, (shared ? stamps[0] : stamps[i]) as Stamp] as const), deleted },
    }))
  const or: fc.Arbitrary<Change> = fc
    .record({ map: mapName, key, adds: fc.array(fc.tuple(stamp, value), { maxLength: 4 }), removes: fc.array(stamp, { maxLength: 3 }) })
    .map(({ map, key, adds, removes }) => ({ kind: 'or' as const, map, key, state: { adds, removes } }))
  const total = fc.oneof(fc.nat(), fc.double({ min: 0, max: 1e12, noNaN: true }).filter((n) => !Object.is(n, -0)))
  const counter: fc.Arbitrary<Change> = fc
    .record({ map: mapName, state: fc.array(fc.tuple(replica, total, total), { maxLength: 4 }) })
    .map(({ map, state }) => ({ kind: 'counter' as const, map, key: '', state: state as unknown as CounterState }))
  return fc.oneof({ weight: 4, arbitrary: lww }, { weight: 1, arbitrary: or }, { weight: 1, arbitrary: counter })
}
/** Batches as clocks write them (they travel packed). */
const packedBatch = fc.array(changeOf(canonicalStamp), { minLength: 1, maxLength: 24 })
/** Batches where some stamps are strings no clock wrote (they travel as in v1). */
const oddBatch = fc.array(changeOf(stamp), { minLength: 1, maxLength: 24 })
const batch = fc.oneof({ weight: 3, arbitrary: packedBatch }, { weight: 1, arbitrary: oddBatch })

/** Batches built against the tables: more replicas and field names than a table takes, walls far apart, one-character names. */
const wideBatch: fc.Arbitrary<Change[]> = fc.integer({ min: 0, max: 2 ** 31 }).map((seed) => {
  const random = prng(seed)
  const pick = (n: number): number => Math.floor(random() * n)
  const changes: Change[] = []
  const replicas = 130 + pick(300)
  for (let r = 0; r < 40; r++) {
    const fields = Array.from({ length: 1 + pick(12) }, () => {
      const name = random() < 0.1 ? '' : String.fromCodePoint(0x4e00 + pick(400))
      const at = encodeStamp({ wall: random() < 0.5 ? pick(MAX_WALL) : 1_700_000_000_000 + pick(10), counter: pick(0x10000), replica: `r${pick(replicas)}` as ReplicaId })
      return [name, pick(3) === 0 ? null : pick(1000), at] as const
    })
    changes.push({ kind: 'lww', map: random() < 0.5 ? 'm' : `map-${pick(200)}`, key: `k${r}`, state: { fields, deleted: null } })
    changes.push({ kind: 'counter', map: 'c', key: '', state: Array.from({ length: 1 + pick(8) }, () => [`${pick(replicas)}` as ReplicaId, pick(100), 0] as const) })
  }
  return changes
})

function changesMessage(changes: Change[]): ChangesMessage {
  return { type: 'changes', sub: 3, changes, moveOut: ['gone'], paced: true }
}

function opsMessage(changes: Change[]): OpsMessage {
  return { type: 'ops', id: 11, changes }
}

const FRAME_LIMITS = { ...DEFAULT_CODEC_LIMITS, maxFrameBytes: 16 * 1024 * 1024 }
const UNBOUNDED = { maxFrameBytes: Infinity, maxDepth: Infinity, maxElements: Infinity }
/** Elements a packed batch's header may add over v1 (its seven items); the frame envelope reserves more. */
const HEADER_ELEMENTS = 7

describe('wire v2 round trip', () => {
  it('decodes every batch of valid changes to exactly the message that was sent, as v1 does', () => {
    check(
      fc.property(batch, (changes) => {
        for (const message of [changesMessage(changes), opsMessage(changes)]) {
          const decode2 = message.type === 'changes' ? decodeServerMessage : decodeClientMessage
          const v2 = decode2(encodeMessage(message, 2), FRAME_LIMITS, 2)
          const v1 = decode2(encodeMessage(message, 1), FRAME_LIMITS, 1)
          expect(valueDifference(v2, message)).toBeNull()
          expect(valueDifference(v2, v1)).toBeNull()
          if (v2.type === 'ops') for (const item of v2.changes) expect(valueDifference(parseChange(item), parseChange(structuredClone(item)))).toBeNull()
        }
      }),
    )
  })
})

describe('wire v2 size', () => {
  it('is never larger than v1 and holds no more elements (beyond its header), also for batches built against the tables', () => {
    check(
      fc.property(fc.oneof(batch, wideBatch), (changes) => {
        for (const message of [changesMessage(changes), opsMessage(changes)]) {
          const v1 = encodeMessage(message, 1)
          const v2 = encodeMessage(message, 2)
          expect(v2.length).toBeLessThanOrEqual(v1.length)
          expect(scanFrame(v2, UNBOUNDED)).toBeLessThanOrEqual(scanFrame(v1, UNBOUNDED) + HEADER_ELEMENTS)
        }
        const wide = decodeServerMessage(encodeMessage(changesMessage(changes), 2), FRAME_LIMITS, 2)
        expect(valueDifference(wide, changesMessage(changes))).toBeNull()
      }),
    )
  })

  it('keeps frames cut by v1 item sizes under the frame limits (bytes and elements)', () => {
    const limits = { maxFrameBytes: 64 * 1024, maxElements: 3_000 }
    const budget = { bytes: limits.maxFrameBytes - FRAME_ENVELOPE.bytes, elements: limits.maxElements - FRAME_ENVELOPE.elements }
    check(
      fc.property(fc.array(fc.oneof(batch, wideBatch), { minLength: 1, maxLength: 20 }), (batches) => {
        for (const cut of packBySize(batches.flat(), measure, budget, 10_000)) {
          const frame = encodeMessage(changesMessage(cut), 2)
          expect(frame.length).toBeLessThanOrEqual(limits.maxFrameBytes)
          expect(scanFrame(frame, UNBOUNDED)).toBeLessThanOrEqual(limits.maxElements)
          expect(frame.length).toBeLessThanOrEqual(encodeMessage(changesMessage(cut), 1).length)
        }
      }),
      Math.ceil(RUNS / 10),
    )
  })

  it('measures a whole list as the sum of its items, and packListBySize cuts frames that fit', () => {
    const limits = { maxFrameBytes: 64 * 1024, maxElements: 3_000 }
    const budget = { bytes: limits.maxFrameBytes - FRAME_ENVELOPE.bytes, elements: limits.maxElements - FRAME_ENVELOPE.elements }
    check(
      fc.property(fc.array(fc.oneof(batch, wideBatch), { minLength: 1, maxLength: 20 }), fc.integer({ min: 1, max: 400 }), (batches, maxCount) => {
        const changes = batches.flat()
        const each = changes.map((change) => measure(change))
        expect(measureTotal(changes)).toEqual({ bytes: each.reduce((sum, size) => sum + size.bytes, 0), elements: each.reduce((sum, size) => sum + size.elements, 0) })
        const cuts = [...packListBySize(changes, measure, measureTotal, budget, maxCount)]
        const greedy = [...packBySize(changes, measure, budget, maxCount)]
        expect(cuts.length === 1).toBe(greedy.length === 1)
        expect(cuts.flat()).toEqual(greedy.flat())
        for (const cut of cuts) {
          expect(cut.length).toBeLessThanOrEqual(maxCount)
          const frame = encodeMessage(changesMessage(cut), 2)
          expect(frame.length).toBeLessThanOrEqual(limits.maxFrameBytes)
          expect(scanFrame(frame, UNBOUNDED)).toBeLessThanOrEqual(limits.maxElements)
        }
      }),
      Math.ceil(RUNS / 10),
    )
  })

  it('prints bytes per record for 200-byte records with six fields', () => {
    const filler = 'lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore magna aliqua ut enim ad'
    const records = 2000
    const changes: Change[] = []
    for (let i = 0; i < records; i++) {
      const id = `r${String(i).padStart(7, '0')}`
      // As a client's `set` writes it: the tombstone one tick before the fields.
      const at = 1_700_000_000_000 + Math.floor(i / 3)
      const deleted = encodeStamp({ wall: at, counter: (i % 3) * 2, replica: 'device-4f2a9c1e' as ReplicaId })
      const fields = encodeStamp({ wall: at, counter: (i % 3) * 2 + 1, replica: 'device-4f2a9c1e' as ReplicaId })
      const record: [string, Value][] = [
        ['id', id],
        ['title', `0:${filler}`.slice(0, 110)],
        ['group', i % 100],
        ['score', (i * 7919) % 100_000],
        ['done', i % 2 === 0],
        ['updatedAt', 1_700_000_000_000 + i],
      ]
      changes.push({ kind: 'lww', map: 'bench', key: id, state: { fields: record.map(([name, v]) => [name, v, fields] as const), deleted } })
    }
    const first = changes[0] as Extract<Change, { kind: 'lww' }>
    const json = JSON.stringify(Object.fromEntries(first.state.fields.map(([n, v]) => [n, v]))).length
    const v1 = encodeMessage(changesMessage(changes), 1).length
    const v2 = encodeMessage(changesMessage(changes), 2).length
    console.log(`[wire-v2] ${records} records of ${json} B as JSON, 6 fields, one replica, in one frame: v1 ${(v1 / records).toFixed(1)} B/record, v2 ${(v2 / records).toFixed(1)} B/record, v2/v1 = ${(v2 / v1).toFixed(3)}`)
    expect(v2).toBeLessThan(v1)
  })
})

/** One rule of the change schema broken at a leaf (or, for some, only apparently: e.g. a key of 1,024 astral characters is 2,048 code units yet valid). */
const breakage = fc.constantFrom<((change: Change) => Change)>(
  (c) => ({ ...c, map: '' }),
  (c) => ({ ...c, map: 'm'.repeat(257) }),
  (c) => ({ ...c, map: '😀'.repeat(256) }),
  (c) => ({ ...c, key: 'k'.repeat(1025) }),
  (c) => ({ ...c, key: '😀'.repeat(1024) }),
  (c) => ({ ...c, key: '😀'.repeat(1025) }),
  (c) => (c.kind === 'lww' ? { ...c, state: { ...c.state, deleted: 'x'.repeat(513) as Stamp } } : c),
  (c) => (c.kind === 'lww' ? { ...c, state: { ...c.state, deleted: '😀'.repeat(256) as Stamp } } : c),
  (c) => (c.kind === 'lww' ? { ...c, state: { fields: [['f', 1, '' as Stamp]], deleted: null } } : c),
  (c) => (c.kind === 'or' ? { ...c, state: { adds: [], removes: ['' as Stamp] } } : c),
  (c) => (c.kind === 'counter' ? { ...c, state: [['r' as ReplicaId, Number.NaN, 0]] } : c),
  (c) => (c.kind === 'counter' ? { ...c, state: [['r' as ReplicaId, -1, 0]] } : c),
  (c) => (c.kind === 'counter' ? { ...c, state: [['r' as ReplicaId, 0, Number.POSITIVE_INFINITY]] } : c),
  (c) => (c.kind === 'counter' ? { ...c, state: [['' as ReplicaId, 0, 0]] } : c),
  (c) => (c.kind === 'counter' ? { ...c, state: [['r'.repeat(129) as ReplicaId, 0, 0]] } : c),
  (c) => (c.kind === 'counter' ? { ...c, state: [['😀'.repeat(128) as ReplicaId, 0, 0]] } : c),
)

/** What a reader makes of a frame: the decoded message, or the error code. */
function verdict(read: () => unknown): unknown {
  try {
    return read()
  } catch (error) {
    if (!(error instanceof OutpostError)) throw error
    return error.code
  }
}

describe('wire v2 verdicts', () => {
  it('accepts and refuses exactly what v1 accepts and refuses', () => {
    check(
      fc.property(packedBatch, fc.array(fc.tuple(fc.nat(), breakage), { maxLength: 3 }), (changes, breaks) => {
        const mutated = [...changes]
        for (const [at, broken] of breaks) mutated[at % mutated.length] = broken(mutated[at % mutated.length] as Change)
        const server = changesMessage(mutated)
        const v1 = verdict(() => decodeServerMessage(encodeMessage(server, 1), FRAME_LIMITS, 1))
        const v2 = verdict(() => decodeServerMessage(encodeMessage(server, 2), FRAME_LIMITS, 2))
        if (typeof v1 === 'string') expect(v2).toBe(v1)
        else expect(valueDifference(v2, v1)).toBeNull()
        const ops = opsMessage(mutated)
        const one = decodeClientMessage(encodeMessage(ops, 1), FRAME_LIMITS, 1) as OpsMessage
        const two = decodeClientMessage(encodeMessage(ops, 2), FRAME_LIMITS, 2) as OpsMessage
        for (let i = 0; i < mutated.length; i++) {
          const first = verdict(() => parseChange(one.changes[i]))
          const second = verdict(() => parseChange(two.changes[i]))
          if (typeof first === 'string') expect(second).toBe(first)
          else expect(valueDifference(second, first)).toBeNull()
        }
      }),
    )
  })
})

const TYPED = new Set(['FRAME_TOO_LARGE', 'DECODE_LIMIT', 'DECODE_FAILED', 'INVALID_MESSAGE'])

/** Decodes `frame` as both kinds of v2 message: only typed errors, and what decodes passes the change schema. */
function readHostile(frame: Uint8Array): void {
  for (const read of [() => decodeServerMessage(frame, undefined, 2), () => decodeClientMessage(frame, undefined, 2)]) {
    let message: unknown
    try {
      message = read()
    } catch (error) {
      if (!(error instanceof OutpostError) || !TYPED.has(error.code)) throw new Error(`a hostile frame threw ${String(error)}`, { cause: error })
      continue
    }
    const changes = (message as { changes?: unknown }).changes
    if (!Array.isArray(changes)) continue
    for (const item of changes) {
      const parsed = verdict(() => parseChange(item))
      // A change the reader passed is one the schema takes; one it refuses, the schema refuses too.
      expect(typeof parsed === 'string' ? parsed : 'ok').toBe(changeSchema.safeParse(item).success ? 'ok' : 'INVALID_MESSAGE')
    }
  }
}

/** Values to put where a packed batch expects something else. */
const oddItems: unknown[] = [-1, 0, 1, 127, 128, 65_535, 65_536, 2 ** 31, 2 ** 53, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '', 'x', '😀', null, true, [], [0], {}, 10n ** 20n, new Date(0), new Uint8Array(2)]

describe('wire v2 under hostile input', () => {
  it('throws only typed errors for mutated packed structures', () => {
    check(
      fc.property(packedBatch, fc.array(fc.tuple(fc.nat(), fc.nat(), fc.nat(), fc.integer({ min: 0, max: 3 })), { minLength: 1, maxLength: 4 }), (changes, edits) => {
        const data = decode(encodeMessage(changesMessage(changes), 2)) as Record<string, unknown>
        const packed = data['batch'] as unknown[]
        for (const [where, at, what, how] of edits) {
          const list = (item: unknown): unknown[] => (Array.isArray(item) ? item : packed)
          if (where % 4 === 3 && packed[5] instanceof Uint8Array) {
            // Edit the stamp stream: a byte changed, added or cut off.
            const stream = Array.from(packed[5])
            const index = what % (stream.length + 1)
            if (how === 0 && stream.length > 0) stream[index % stream.length] = at % 256
            else if (how === 1 || how === 0) stream.splice(index, 0, at % 256)
            else stream.length = index
            packed[5] = new Uint8Array(stream)
            continue
          }
          // Edit the header, a table or a record.
          const records = list(packed[6])
          const target = where % 4 === 0 ? packed : where % 4 === 1 ? list(packed[2 + (at % 3)]) : list(records[at % Math.max(1, records.length)])
          const index = what % Math.max(1, target.length + 1)
          // Fresh copies: one shared [] put inside itself would make a cycle no encoder takes.
          if (how === 0) target[index] = structuredClone(oddItems[(at + what) % oddItems.length])
          else if (how === 1) target.splice(index, 1)
          else if (how === 2) target.splice(index, 0, structuredClone(oddItems[(where + what) % oddItems.length]))
          else target.length = Math.min(target.length, index)
        }
        readHostile(encode(data))
        readHostile(encode({ ...data, type: 'ops', id: 1 }))
      }),
    )
  })

  it('throws only typed errors for mutated bytes', () => {
    check(
      fc.property(packedBatch, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 2 })), { minLength: 1, maxLength: 8 }), (changes, edits) => {
        let bytes = Array.from(encodeMessage(changesMessage(changes), 2))
        for (const [at, byte, how] of edits) {
          const index = at % (bytes.length + 1)
          if (how === 0) bytes[Math.min(index, bytes.length - 1)] = byte
          else if (how === 1) bytes.splice(index, 0, byte)
          else bytes = bytes.slice(0, Math.max(1, index))
        }
        readHostile(new Uint8Array(bytes))
      }),
    )
  })
})
