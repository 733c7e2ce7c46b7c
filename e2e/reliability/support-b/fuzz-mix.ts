/**
 * The S1 frame stream: server-lite's full fuzz catalogue (`fuzzFrame`: huge headers, deep
 * nesting, frames over 1 MiB, hostile writes …) for a share of the frames, and cheap
 * structured and byte-level mutations of valid client messages for the rest. The heavy
 * kinds average tens of KiB a frame; drawing them for every frame would make 10^5 frames
 * a gigabyte of traffic, so the mix keeps their variety at a rate a CI machine can send.
 *
 * Frame `i` depends only on the seed and `i`, so a replay sends the same bytes.
 */
import { encode, encodeMessage, type ClientMessage } from '@outpost/core'
import { sampleClientMessages } from '@outpost/core/testing'
import { fuzzFrame } from '../../../packages/server-lite/test/helpers/fuzz-frames'
import { between, pick, prng } from '../../../packages/server-lite/test/helpers/seed'

/** Which generator made a frame: a catalogue kind, or one of the light mutations. */
export type MixKind = 'catalogue' | 'structured' | 'bytes' | 'random'

/** One frame of the stream. */
export interface MixFrame {
  readonly kind: MixKind
  readonly bytes: Uint8Array
}

const SAMPLES: readonly ClientMessage[] = Object.values(sampleClientMessages)
const TYPES: readonly string[] = SAMPLES.map((m) => m.type)
const VALID: readonly Uint8Array[] = SAMPLES.map((m) => encodeMessage(m))
const KEYS = ['type', 'id', 'sub', 'map', 'key', 'shape', 'where', 'changes', 'state', 'fields', 'nodes', 'path', 'entries', 'root', 'versions', 'token', '__proto__', 'constructor', '']

/** A small value of a kind a schema may not expect. */
function oddValue(random: () => number, depth = 0): unknown {
  switch (between(random, 0, depth > 2 ? 7 : 9)) {
    case 0:
      return null
    case 1:
      return random() < 0.5
    case 2:
      return pick(random, [-1, 0, 0.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53, -(2 ** 31), 2 ** 32, 1e308, -0])
    case 3:
      return pick(random, [2n ** 64n, -1n])
    case 4:
      return pick(random, ['', '__proto__', 'constructor', '$sub', 'x'.repeat(between(random, 1, 300)), ...TYPES])
    case 5:
      return Uint8Array.from({ length: between(random, 0, 16) }, () => between(random, 0, 255))
    case 6:
      return new Date(between(random, -1e12, 1e13))
    case 7:
      return between(random, -1e6, 1e6)
    case 8:
      return Array.from({ length: between(random, 0, 4) }, () => oddValue(random, depth + 1))
    default: {
      const out: Record<string, unknown> = {}
      for (let n = between(random, 0, 3); n > 0; n--) Object.defineProperty(out, pick(random, KEYS), { value: oddValue(random, depth + 1), enumerable: true, writable: true, configurable: true })
      return out
    }
  }
}

/** One to three edits (delete, replace, add a key, retype) at random depths of a clone of a valid message. */
function structured(random: () => number): Uint8Array {
  const root = structuredClone(pick(random, SAMPLES)) as unknown as Record<string, unknown>
  for (let n = between(random, 1, 3); n > 0; n--) {
    let node: Record<string, unknown> = root
    for (let steps = between(random, 0, 4); steps > 0; steps--) {
      const keys = Object.keys(node)
      if (keys.length === 0) break
      const next = node[pick(random, keys)]
      if (typeof next !== 'object' || next === null || next instanceof Uint8Array || next instanceof Date) break
      node = next as Record<string, unknown>
    }
    const keys = Object.keys(node)
    const roll = random()
    if (roll < 0.2 && keys.length > 0) delete node[pick(random, keys)]
    else if (roll < 0.35) Object.defineProperty(node, pick(random, KEYS), { value: oddValue(random), enumerable: true, writable: true, configurable: true })
    else if (roll < 0.45) node['type'] = pick(random, TYPES)
    else if (keys.length > 0) node[pick(random, keys)] = oddValue(random)
  }
  try {
    return encode(root)
  } catch {
    // Not encodable (a lone surrogate, say): a bare message of some type.
    return encode({ type: pick(random, TYPES) })
  }
}

/** Flips, replaces, inserts, deletes or truncates bytes of a valid frame. */
function bytes(random: () => number): Uint8Array {
  const out = Array.from(pick(random, VALID))
  for (let n = between(random, 1, 6); n > 0; n--) {
    const at = between(random, 0, Math.max(0, out.length - 1))
    switch (between(random, 0, 4)) {
      case 0:
        out[at] = (out[at] ?? 0) ^ (1 << between(random, 0, 7))
        break
      case 1:
        out[at] = pick(random, [0x00, 0x7f, 0x80, 0x90, 0xa0, 0xc0, 0xc1, 0xc4, 0xc7, 0xd4, 0xd9, 0xdc, 0xde, 0xff])
        break
      case 2:
        out.splice(at, 0, ...Array.from({ length: between(random, 1, 8) }, () => between(random, 0, 255)))
        break
      case 3:
        out.splice(at, between(random, 1, 8))
        break
      default:
        out.length = at
    }
  }
  return Uint8Array.from(out)
}

/**
 * Frame `i` of the stream for `seed`: the full catalogue for `catalogueShare` of the frames
 * and for every frame the catalogue makes oversize (every 1,250th), light mutations for the rest.
 */
export function mixFrame(seed: number, i: number, catalogueShare = 0.05): MixFrame {
  const random = prng((seed ^ Math.imul(i + 1, 0x85ebca6b)) >>> 0)
  const roll = random()
  if (roll < catalogueShare || i % 1250 === 1249) return { kind: 'catalogue', bytes: fuzzFrame(seed, i).bytes }
  if (roll < 0.6) return { kind: 'structured', bytes: structured(random) }
  if (roll < 0.92) return { kind: 'bytes', bytes: bytes(random) }
  return { kind: 'random', bytes: Uint8Array.from({ length: between(random, 0, 48) }, () => between(random, 0, 255)) }
}
