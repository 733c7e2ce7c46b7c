/**
 * Property tests of wire v2's packed reconciliation lists (`reconcile`, `nodes`,
 * `entries`). Seeded: the seed is printed, OUTPOST_SEED replays a run,
 * OUTPOST_PROPERTY_RUNS sets the runs per property (default 300).
 *
 * Properties:
 *  - round trip: any node list and any entry list (pairs, null stamps, stamps; hex digests
 *    and, rarely, strings the schema takes that are not hex) decodes from v2 to exactly
 *    the message that was sent, as from v1;
 *  - size: the v2 frame is never larger than the v1 frame, and holds no more elements
 *    (beyond its header's seven);
 *  - hostile input: mutated packed frames throw nothing but the codec's typed errors.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { MAX_WALL, encodeStamp } from '../src/clock'
import { OutpostError } from '../src/errors'
import { decode, decodeClientMessage, decodeServerMessage, encode, encodeMessage, scanFrame } from '../src/protocol/codec'
import type { ClientMessage, EntriesMessage, ServerMessage } from '../src/protocol/messages'
import { testSeed } from '../src/testing/random'
import { valueDifference } from '../src/testing/store-suite'
import type { ReplicaId, Stamp } from '../src/types'

const SEED = testSeed('wire-v2 reconcile properties')
const RUNS = Math.max(1, Number(process.env['OUTPOST_PROPERTY_RUNS'] ?? 300))

function check<T>(property: fc.IProperty<T>): void {
  const result = fc.check(property, { seed: SEED, numRuns: RUNS })
  if (result.failed) throw new Error(`property failed; replay with OUTPOST_SEED=${SEED}\n${String(result.errorInstance).slice(0, 1000)}\n${(fc.defaultReportMessage(result) ?? '').slice(0, 3000)}`)
}

const UNBOUNDED = { maxFrameBytes: Infinity, maxDepth: Infinity, maxElements: Infinity }
const HEADER_ELEMENTS = 7

const hex = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map((n) => n.toString(16).padStart(16, '0'))
// The schema takes any 16 characters: such a list travels as in v1.
const digest = fc.oneof({ weight: 20, arbitrary: hex }, { weight: 1, arbitrary: fc.string({ minLength: 16, maxLength: 16 }) })
const path = fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), maxLength: 16 })
const node = fc.record({ path, hash: digest, count: fc.oneof(fc.nat({ max: 20 }), fc.nat()) }, { noNullPrototype: true })
const replica = fc.oneof(fc.constantFrom('device-4f2a9c1e', 'r', '__proto__'), fc.string({ unit: 'grapheme', minLength: 1, maxLength: 10 }).filter((r) => r.length <= 128))
const stamp: fc.Arbitrary<Stamp> = fc
  .record({ wall: fc.oneof(fc.integer({ min: 1_700_000_000_000, max: 1_700_000_100_000 }), fc.integer({ min: 0, max: MAX_WALL })), counter: fc.integer({ min: 0, max: 0xffff }), replica })
  .map((parts) => encodeStamp({ ...parts, replica: parts.replica as ReplicaId }))
const key = fc.oneof(fc.constantFrom('', '__proto__', 'constructor'), fc.string({ unit: 'grapheme', maxLength: 12 }))
const entry = fc.oneof(
  fc.tuple(key, digest),
  fc.tuple(key, digest, fc.constant(null)),
  fc.tuple(key, digest, stamp),
) as fc.Arbitrary<EntriesMessage['entries'][number]>
const entryList = fc.oneof(fc.array(entry, { maxLength: 40 }), fc.array(fc.tuple(key, hex, stamp), { maxLength: 40 }) as fc.Arbitrary<EntriesMessage['entries'][number][]>)

/** A reconciliation message of each kind carrying these lists. */
const message: fc.Arbitrary<ClientMessage | ServerMessage> = fc.oneof(
  fc.array(node, { maxLength: 40 }).map((nodes) => ({ type: 'reconcile' as const, sub: 1, nodes })),
  fc.tuple(fc.array(node, { maxLength: 40 }), fc.boolean()).map(([nodes, more]) => ({ type: 'nodes' as const, sub: 2, nodes, ...(more ? { more: true as const } : {}) })),
  fc.tuple(path, entryList).map(([at, entries]) => ({ type: 'entries' as const, sub: 3, path: at, entries })),
)

const read = (frame: Uint8Array, type: string, version: number): unknown =>
  type === 'nodes' ? decodeServerMessage(frame, { maxFrameBytes: 1 << 24 }, version) : decodeClientMessage(frame, { maxFrameBytes: 1 << 24 }, version)

describe('wire v2 reconciliation lists', () => {
  it('decode to exactly the message that was sent, as in v1', () => {
    check(
      fc.property(message, (sent) => {
        const v2 = read(encodeMessage(sent, 2), sent.type, 2)
        expect(valueDifference(v2, sent)).toBeNull()
        expect(valueDifference(v2, read(encodeMessage(sent, 1), sent.type, 1))).toBeNull()
      }),
    )
  })

  it('are never larger than in v1 and hold no more elements (beyond the header)', () => {
    check(
      fc.property(message, (sent) => {
        const v1 = encodeMessage(sent, 1)
        const v2 = encodeMessage(sent, 2)
        expect(v2.length).toBeLessThanOrEqual(v1.length)
        expect(scanFrame(v2, UNBOUNDED)).toBeLessThanOrEqual(scanFrame(v1, UNBOUNDED) + HEADER_ELEMENTS)
      }),
    )
  })

  it('throw only typed errors when their packed form is mutated', () => {
    const odd: unknown[] = [-1, 0, 1, 2, 3, 255, 2 ** 53, 1.5, '', 'x', null, true, [], {}, new Uint8Array(3), new Uint8Array(8), 10n ** 20n]
    check(
      fc.property(message, fc.array(fc.tuple(fc.nat(), fc.nat(), fc.integer({ min: 0, max: 3 })), { minLength: 1, maxLength: 4 }), (sent, edits) => {
        const data = decode(encodeMessage(sent, 2)) as Record<string, unknown>
        const packed = data['batch']
        if (!Array.isArray(packed)) return
        for (const [at, what, how] of edits) {
          const inner = packed[at % packed.length]
          const target: unknown[] = Array.isArray(inner) && at % 2 === 0 ? inner : packed
          if (inner instanceof Uint8Array && how === 3) {
            const bytes = Array.from(inner)
            bytes.splice(what % (bytes.length + 1), 0, what % 256)
            packed[at % packed.length] = new Uint8Array(bytes)
            continue
          }
          const index = what % (target.length + 1)
          // Fresh copies: one shared [] put inside itself would make a cycle no encoder takes.
          if (how === 0) target[index] = structuredClone(odd[(at + what) % odd.length])
          else if (how === 1) target.splice(index, 1)
          else if (how === 2) target.splice(index, 0, structuredClone(odd[what % odd.length]))
          else target.length = Math.min(target.length, index)
        }
        const frame = encode(data)
        for (const decodeAs of [decodeServerMessage, decodeClientMessage]) {
          try {
            decodeAs(frame, undefined, 2)
          } catch (error) {
            if (!(error instanceof OutpostError) || !['DECODE_FAILED', 'INVALID_MESSAGE', 'DECODE_LIMIT'].includes(error.code)) throw new Error(`a hostile frame threw ${String(error)}`, { cause: error })
          }
        }
      }),
    )
  })
})
