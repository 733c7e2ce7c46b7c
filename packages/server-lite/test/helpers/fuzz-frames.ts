/**
 * Hostile frames for fuzzing the relay, drawn from a seeded PRNG so a failing run replays:
 * random bytes, byte-level and structural mutations of a valid frame of every client
 * message type (core's `sampleClientMessages`), valid msgpack of wrong shapes, length
 * headers that promise gigabytes, deep nesting, and frames over the 1 MiB limit.
 */
import { Hlc, encode, encodeMessage, type ClientMessage, type ReplicaId } from '@outpost/core'
import { sampleClientMessages } from '@outpost/core/testing'
import { between, pick, prng } from './seed'

/** Kinds of fuzz frame. */
export type FuzzKind = 'hostile-write' | 'random-bytes' | 'byte-mutation' | 'structural-mutation' | 'wrong-shape' | 'huge-header' | 'deep-nesting' | 'oversize'

/** One fuzz frame. */
export interface FuzzFrame {
  readonly kind: FuzzKind
  readonly bytes: Uint8Array
}

const SAMPLES: readonly ClientMessage[] = Object.values(sampleClientMessages)
const TYPES: readonly string[] = SAMPLES.map((m) => m.type)
const VALID_FRAMES: readonly Uint8Array[] = SAMPLES.map((m) => encodeMessage(m))
/** Bytes with a meaning in msgpack: type markers, fixext/ext headers, 32-bit length headers. */
const INTERESTING = [0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcf, 0xd3, 0xd4, 0xd6, 0xd8, 0xd9, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xff]
/** The replica id {@link fuzzFrame}'s hostile writes are stamped with: connections that send them must hello as it. */
export const FUZZ_REPLICA = 'fuzz-writer'

/**
 * A well-formed `ops` frame from {@link FUZZ_REPLICA} whose content is hostile: odd map
 * names and keys, values of every kind (NaN, huge bigints, lone surrogates, deep nesting,
 * `__proto__` fields), counters with odd totals. Some of it is valid and gets committed.
 */
function hostileWrite(random: () => number, i: number): Uint8Array {
  // Stamps in the past (never refused for drift), distinct per frame.
  const clock = new Hlc({ replicaId: FUZZ_REPLICA as ReplicaId, now: () => 1_700_000_000_000 + i })
  const changes: unknown[] = []
  for (let n = between(random, 1, 4); n > 0; n--) {
    const key = pick(random, ['', '__proto__', 'constructor', 'k1', 'k2', 'x'.repeat(between(random, 1, 1100))])
    const roll = random()
    if (roll < 0.6) {
      const fields = Array.from({ length: between(random, 0, 3) }, () => [pick(random, ['a', '', '__proto__', 'constructor', 'deep']), randomValue(random), clock.tick()])
      changes.push({ kind: 'lww', map: pick(random, ['fz0', 'fz1', '__proto__']), key, state: { fields, deleted: random() < 0.2 ? clock.tick() : null } })
    } else if (roll < 0.8) {
      changes.push({ kind: 'or', map: 'fz-or', key, state: { adds: [[clock.tick(), randomValue(random)]], removes: random() < 0.5 ? [clock.tick()] : [] } })
    } else {
      const total = pick(random, [0, 1, 2 ** 53, 1.5, 1e308, Number.MAX_VALUE, between(random, 0, 1e6)])
      changes.push({ kind: 'counter', map: pick(random, ['fz-count', 'fz0']), key: '', state: [[FUZZ_REPLICA, total, pick(random, [0, 1, 0.25])]] })
    }
  }
  return encode({ type: 'ops', id: i, changes })
}

/** Bytes just over the relay's default `maxFrameBytes` (1 MiB). */
export const ONE_MIB = 1024 * 1024

function concat(parts: readonly (Uint8Array | readonly number[])[]): Uint8Array {
  const size = parts.reduce((n, p) => n + p.length, 0)
  const out = new Uint8Array(size)
  let at = 0
  for (const part of parts) {
    out.set(part, at)
    at += part.length
  }
  return out
}

function randomBytes(random: () => number, length: number): Uint8Array {
  const out = new Uint8Array(length)
  for (let i = 0; i < length; i++) out[i] = Math.floor(random() * 256)
  return out
}

function mutateBytes(random: () => number, frame: Uint8Array): Uint8Array {
  let bytes = Array.from(frame)
  const count = between(random, 1, 8)
  for (let n = 0; n < count; n++) {
    const at = between(random, 0, Math.max(0, bytes.length - 1))
    switch (between(random, 0, 6)) {
      case 0:
        bytes[at] = (bytes[at] ?? 0) ^ (1 << between(random, 0, 7))
        break
      case 1:
        bytes[at] = pick(random, INTERESTING)
        break
      case 2:
        bytes.splice(at, 0, ...randomBytes(random, between(random, 1, 16)))
        break
      case 3:
        bytes.splice(at, between(random, 1, 8))
        break
      case 4:
        bytes.splice(at, 0, ...bytes.slice(at, at + between(random, 1, 32)))
        break
      case 5:
        bytes = bytes.slice(0, at)
        break
      default:
        bytes.splice(at, 4, 0xff, 0xff, 0xff, 0xff)
    }
  }
  return Uint8Array.from(bytes)
}

function nested(depth: number, leaf: unknown): unknown {
  let value = leaf
  for (let i = 0; i < depth; i++) value = i % 2 === 0 ? [value] : { v: value }
  return value
}

/** A value of any msgpack-able kind, including the ones a schema does not expect. */
function randomValue(random: () => number, depth = 0): unknown {
  switch (between(random, 0, depth > 3 ? 9 : 13)) {
    case 0:
      return null
    case 1:
      return random() < 0.5
    case 2:
      return pick(random, [-1, 0, 1.5, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 2 ** 53, -(2 ** 31), 1e308, 2 ** 32, -0])
    case 3:
      return pick(random, [2n ** 64n, -1n, 2n ** 200n])
    case 4:
      return pick(random, ['', '__proto__', 'constructor', '\ud800', 'x'.repeat(between(random, 1, 5000)), ...TYPES])
    case 5:
      return new Date(between(random, -1e15, 1e15))
    case 6:
      return randomBytes(random, between(random, 0, 64))
    case 7:
      return between(random, -1e9, 1e9)
    case 8:
      return 'hello'
    case 9:
      return `0000017f${String(between(random, 0, 1e8)).padStart(8, '0')}-0000-replica-a`
    case 10:
      return Array.from({ length: between(random, 0, 5) }, () => randomValue(random, depth + 1))
    case 11: {
      const out: Record<string, unknown> = {}
      for (let i = between(random, 0, 4); i > 0; i--) out[pick(random, ['type', 'id', 'sub', 'map', 'key', 'state', '__proto__', 'constructor', ''])] = randomValue(random, depth + 1)
      return out
    }
    case 12:
      return nested(between(random, 30, 90), randomValue(random, depth + 1))
    default:
      return Array.from({ length: between(random, 100, 3000) }, () => between(random, 0, 9))
  }
}

/** Replaces, deletes or adds one node somewhere in a clone of `message`. */
function mutateStructure(random: () => number, message: unknown): unknown {
  const root = structuredClone(message) as Record<string, unknown>
  const edits = between(random, 1, 3)
  for (let n = 0; n < edits; n++) {
    // Walk down a random path of objects/arrays, then edit there.
    let node: unknown = root
    for (let steps = between(random, 0, 5); steps > 0; steps--) {
      if (typeof node !== 'object' || node === null || node instanceof Uint8Array || node instanceof Date) break
      const keys = Object.keys(node)
      if (keys.length === 0) break
      const next = (node as Record<string, unknown>)[pick(random, keys)]
      if (typeof next !== 'object' || next === null) break
      node = next
    }
    if (typeof node !== 'object' || node === null || node instanceof Uint8Array || node instanceof Date) continue
    const target = node as Record<string, unknown>
    const keys = Object.keys(target)
    const roll = random()
    if (roll < 0.15 && keys.length > 0) delete target[pick(random, keys)]
    else if (roll < 0.3) Object.defineProperty(target, pick(random, ['extra', '__proto__', 'constructor', 'type']), { value: randomValue(random), enumerable: true, writable: true, configurable: true })
    else if (roll < 0.4) target.type = pick(random, TYPES)
    else if (keys.length > 0) target[pick(random, keys)] = randomValue(random)
  }
  return root
}

function hugeHeader(random: () => number): Uint8Array {
  const headers: readonly (readonly number[])[] = [
    [0xdd, 0xff, 0xff, 0xff, 0xff], // array32 of 4 billion
    [0xdf, 0xff, 0xff, 0xff, 0xff], // map32
    [0xdb, 0xff, 0xff, 0xff, 0xff], // str32
    [0xc6, 0xff, 0xff, 0xff, 0xff], // bin32
    [0xc9, 0xff, 0xff, 0xff, 0xff, 0x42], // ext32 (the bigint extension)
    [0xc9, 0x7f, 0xff, 0xff, 0xff, 0xff], // ext32 (the timestamp extension)
    [0xdc, 0xff, 0xff], // array16
    [0xde, 0xff, 0xff], // map16
  ]
  const header = pick(random, headers)
  const tail = randomBytes(random, between(random, 0, 32))
  switch (between(random, 0, 3)) {
    case 0:
      return concat([header, tail])
    case 1: {
      // Inside an otherwise well-formed ops message: {type: 'ops', id: 1, changes: <header>}.
      return concat([[0x83], encode('type'), encode('ops'), encode('id'), encode(1), encode('changes'), header, tail])
    }
    case 2:
      // Just over the element budget (250,000), with every element present.
      return concat([[0xdd, 0x00, 0x03, 0xd0, 0x91], new Uint8Array(250_001).fill(0xc0)])
    default:
      return concat([[0x82], encode('type'), encode('hello'), encode('versions'), header, tail])
  }
}

function deepNesting(random: () => number): Uint8Array {
  const depth = random() < 0.5 ? between(random, 65, 200) : between(random, 1_000, 300_000)
  switch (between(random, 0, 2)) {
    case 0:
      return concat([new Uint8Array(depth).fill(0x91), [0xc0]])
    case 1: {
      const level = [0x81, 0xa1, 0x61] // {a: ...}
      const out = new Uint8Array(depth * 3 + 1)
      for (let i = 0; i < depth; i++) out.set(level, i * 3)
      out[depth * 3] = 0xc0
      return out
    }
    default: {
      // A valid ops frame whose field value nests too deep.
      const change = sampleClientMessages.ops.changes[0]
      if (change === undefined || change.kind !== 'lww') throw new Error('sample ops lost its lww change')
      const deep = { ...change, state: { ...change.state, fields: [['deep', nested(Math.min(depth, 400), 1), change.state.fields[0]?.[2]]] } }
      return encode({ type: 'ops', id: 99, changes: [deep] })
    }
  }
}

/** A frame over the 1 MiB limit: random bytes, or a valid ops message with one huge value. */
function oversize(random: () => number): Uint8Array {
  const size = ONE_MIB + between(random, 1, 4096)
  if (random() < 0.5) return randomBytes(random, size)
  return encode({ type: 'ops', id: 5, changes: [{ kind: 'lww', map: 'big', key: 'k', state: { fields: [['blob', 'x'.repeat(size), '0000017f00000001-0000-replica-a']], deleted: null } }] })
}

/**
 * Frame `i` of the stream for `seed`: every frame depends only on the seed and its
 * index, so a replay sends the same bytes whatever the connections' timing. Every
 * `oversizeEvery`-th frame is over 1 MiB.
 */
export function fuzzFrame(seed: number, i: number, oversizeEvery = 1250): FuzzFrame {
  const random = prng((seed ^ Math.imul(i + 1, 0x9e3779b1)) >>> 0)
  if (i % oversizeEvery === oversizeEvery - 1) return { kind: 'oversize', bytes: oversize(random) }
  const roll = random()
  if (roll < 0.08) {
    try {
      return { kind: 'hostile-write', bytes: hostileWrite(random, i) }
    } catch {
      // Not encodable (e.g. a lone surrogate key); fall through to random bytes.
    }
  }
  if (roll < 0.15) return { kind: 'random-bytes', bytes: randomBytes(random, between(random, 0, random() < 0.9 ? 64 : 4096)) }
  if (roll < 0.5) return { kind: 'byte-mutation', bytes: mutateBytes(random, pick(random, VALID_FRAMES)) }
  if (roll < 0.75) {
    const mutated = mutateStructure(random, pick(random, SAMPLES))
    try {
      return { kind: 'structural-mutation', bytes: encode(mutated) }
    } catch {
      // Not encodable (e.g. a lone surrogate key); fall through to a wrong shape.
    }
  }
  if (roll < 0.88) {
    const value = random() < 0.5 ? randomValue(random) : { type: pick(random, TYPES), ...(randomValue(random) as object) }
    try {
      return { kind: 'wrong-shape', bytes: encode(value) }
    } catch {
      return { kind: 'wrong-shape', bytes: encode({ type: pick(random, TYPES) }) }
    }
  }
  if (roll < 0.94) return { kind: 'huge-header', bytes: hugeHeader(random) }
  return { kind: 'deep-nesting', bytes: deepNesting(random) }
}
