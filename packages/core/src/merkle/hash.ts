/**
 * Hashing for reconciliation: a fast, pure-JS, non-cryptographic 64-bit hash of strings,
 * and the digests of CRDT states that Merkle trees are built from.
 *
 * Two independent 32-bit lanes (murmur3-style block mixing with different constants and
 * rotations) each consume the string as 32-bit words of two UTF-16 code units; a final
 * avalanche step cross-mixes the lanes so every input bit reaches all 64 output bits.
 * Not collision-resistant against an adversary: a replica can only hurt its own sync by
 * forging collisions, and the relay authorizes every change it applies.
 */
import type { Change, CounterState, LwwRecordState, OrSetState } from '../types'

/** A 64-bit digest: 16 lowercase hex characters. */
export type Digest = string

/** The digest of nothing (an empty Merkle node). */
export const EMPTY_DIGEST: Digest = '0000000000000000'

const SEED_A = 0x9e3779b9
const SEED_B = 0x85ebca6b

function rotl(x: number, r: number): number {
  return (x << r) | (x >>> (32 - r))
}

function fmix(h: number): number {
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h
}

/**
 * The 64-bit hash of `input` as two unsigned 32-bit halves `[hi, lo]`. Use this where the
 * number form is needed (e.g. modular sums in Merkle nodes) to skip hex parsing.
 */
export function hash64Parts(input: string): [hi: number, lo: number] {
  const len = input.length
  let a = SEED_A ^ len
  let b = SEED_B ^ Math.imul(len, 0x27d4eb2d)
  let i = 0
  for (; i + 1 < len; i += 2) {
    const word = input.charCodeAt(i) | (input.charCodeAt(i + 1) << 16)

    let ka = Math.imul(word, 0xcc9e2d51)
    ka = rotl(ka, 15)
    ka = Math.imul(ka, 0x1b873593)
    a ^= ka
    a = rotl(a, 13)
    a = (Math.imul(a, 5) + 0xe6546b64) | 0

    let kb = Math.imul(word, 0x85ebca77)
    kb = rotl(kb, 17)
    kb = Math.imul(kb, 0xc2b2ae3d)
    b ^= kb
    b = rotl(b, 11)
    b = (Math.imul(b, 9) + 0x165667b1) | 0
  }
  if (i < len) {
    // The odd last code unit, tagged so "x" and "x\u0000" differ even beyond the length mix.
    const word = input.charCodeAt(i) | 0x10000
    a ^= rotl(Math.imul(word, 0xcc9e2d51), 15)
    a = Math.imul(a, 0x1b873593)
    b ^= rotl(Math.imul(word, 0x85ebca77), 17)
    b = Math.imul(b, 0xc2b2ae3d)
  }
  a = fmix(a)
  b = fmix(b ^ rotl(a, 7))
  a = fmix(a ^ Math.imul(b, 0x27d4eb2f))
  return [a >>> 0, b >>> 0]
}

// Byte-to-hex table: formatting by lookup is several times faster than toString(16) + padStart.
const BYTE_HEX: readonly string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'))

function hex32(x: number): string {
  return (
    (BYTE_HEX[(x >>> 24) & 0xff] as string) +
    (BYTE_HEX[(x >>> 16) & 0xff] as string) +
    (BYTE_HEX[(x >>> 8) & 0xff] as string) +
    (BYTE_HEX[x & 0xff] as string)
  )
}

/** Formats two unsigned 32-bit halves as a {@link Digest}. */
export function digestFromParts(hi: number, lo: number): Digest {
  return hex32(hi) + hex32(lo)
}

/** Parses a {@link Digest} into its `[hi, lo]` halves (no validation: callers pass digests they made or checked). */
export function digestToParts(digest: Digest): [hi: number, lo: number] {
  return [parseInt(digest.slice(0, 8), 16) >>> 0, parseInt(digest.slice(8, 16), 16) >>> 0]
}

/** The 64-bit hash of `input` as 16 lowercase hex characters. */
export function hash64(input: string): Digest {
  const [hi, lo] = hash64Parts(input)
  return hex32(hi) + hex32(lo)
}

/** True when `value` is a well-formed {@link Digest}. */
export function isDigest(value: unknown): value is Digest {
  return typeof value === 'string' && /^[0-9a-f]{16}$/.test(value)
}

// Length-prefixing every part makes the encoding injective whatever characters names hold.
function part(s: string): string {
  return `${s.length}:${s}`
}

/**
 * The digest of one LWW record's version: field names and stamps plus the tombstone
 * stamp (values are not hashed: a stamp identifies the write that set a value).
 * With `fields`, only those fields count, so a shape's digest covers only what it
 * projects; the tombstone always counts. Independent of field order.
 */
export function lwwDigest(state: LwwRecordState, fields?: readonly string[]): Digest {
  const only = fields === undefined ? undefined : new Set(fields)
  const parts: string[] = []
  for (const [name, , stamp] of state.fields) {
    if (only !== undefined && !only.has(name)) continue
    parts.push(part(name) + part(stamp))
  }
  parts.sort()
  return hash64(`l${state.deleted === null ? '-' : part(state.deleted)}|${parts.join('')}`)
}

/** The digest of an OR set's version: its sorted add tags and sorted removed tags. */
export function orDigest(state: OrSetState): Digest {
  const adds = state.adds.map(([tag]) => part(tag)).sort()
  const removes = state.removes.map(part).sort()
  return hash64(`o${adds.join('')}|${removes.join('')}`)
}

/** The digest of a PN counter's version: its per-replica `[replica, increments, decrements]`, sorted by replica. */
export function counterDigest(state: CounterState): Digest {
  const parts = state.map(([replica, inc, dec]) => part(replica) + part(String(inc)) + part(String(dec))).sort()
  return hash64(`c${parts.join('')}`)
}

/** The digest of a state of the given kind; `fields` projects LWW records (ignored for other kinds). */
export function stateDigest(kind: 'lww' | 'or' | 'counter', state: LwwRecordState | OrSetState | CounterState, fields?: readonly string[]): Digest {
  switch (kind) {
    case 'lww':
      return lwwDigest(state as LwwRecordState, fields)
    case 'or':
      return orDigest(state as OrSetState)
    case 'counter':
      return counterDigest(state as CounterState)
  }
}

/** The digest of a change's state, by kind; `fields` projects LWW records (ignored for other kinds). */
export function changeDigest(change: Change, fields?: readonly string[]): Digest {
  switch (change.kind) {
    case 'lww':
      return lwwDigest(change.state, fields)
    case 'or':
      return orDigest(change.state)
    case 'counter':
      return counterDigest(change.state)
  }
}
