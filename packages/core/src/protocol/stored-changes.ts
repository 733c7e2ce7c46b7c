/**
 * `changes` frames built from records in their stored form, without decoding them.
 *
 * A relay streams a slice from its store: each record is kept as `encode([key, seq, state])`
 * (core's codec, the value checked by `assertStoredValue` when it was written). Decoding it
 * into objects only to encode them again (and self-check the result) was most of a relay's
 * slice time. {@link encodeStoredChanges} copies each record's key and state bytes (v1) or
 * its key and field values (v2, `change-batch.ts`) into the frame as they are, and writes
 * only what differs around them (the change's envelope, the v2 tables and stamp stream).
 *
 * The result is byte for byte what {@link encodeMessage} gives for the same message with
 * the decoded changes, with the same element count; `stored-changes.test.ts` holds it to
 * that. When a record is not what this packer expects (an OR set or counter in v2, a stamp
 * v2 would not pack, anything unexpected) it returns undefined and the caller decodes and
 * encodes as usual: the fast path never guesses. No self-check scan: the bytes are the
 * store's own, validated once when written (a frame from a client is still scanned).
 */
import type { CollectionKind } from '../types'
import { decode, encodeCheckedView, type CodecLimits, type CountedFrame } from './codec'
import type { NumberedChangesMessage } from './shared-frame'
import { StampWriter } from './stamp-stream'

/** Records in their stored form, one after another: record `i` is `bytes[offsets[i], offsets[i + 1])`. */
export interface StoredRecords {
  readonly bytes: Uint8Array
  /** `count + 1` offsets into `bytes`. */
  readonly offsets: Uint32Array
  readonly count: number
}

/** Layout version of a packed batch (`change-batch.ts`). */
const FORMAT = 1
const LWW_DELETED = 4
const LWW_SHARED = 8
/** Entries the field-name table may hold (`change-batch.ts`). */
const SMALL_TABLE = 128
const MAX_REPLICA_LENGTH = 128
const MAX_WALL = 36 ** 10 - 1

/** Decoding a stored string: the store's own bytes, no frame limits (the codec's UTF-8 check still runs). */
const UNBOUNDED: CodecLimits = { maxFrameBytes: Infinity, maxDepth: Infinity, maxElements: Infinity }
const ascii = (text: string): Uint8Array => Uint8Array.from(text, (c) => c.charCodeAt(0))
/** The msgpack strings `fields` and `deleted`: the keys of a stored LWW state. */
const FIELDS = ascii('\xa6fields')
const DELETED = ascii('\xa7deleted')

/** A growable byte buffer, reused from call to call (the frame is one copy out of it). */
class Sink {
  bytes = new Uint8Array(64 * 1024)
  length = 0

  reserve(n: number): void {
    if (this.length + n <= this.bytes.length) return
    let size = this.bytes.length * 2
    while (size < this.length + n) size *= 2
    const grown = new Uint8Array(size)
    grown.set(this.bytes.subarray(0, this.length))
    this.bytes = grown
  }

  byte(value: number): void {
    this.reserve(1)
    this.bytes[this.length++] = value
  }

  copy(from: Uint8Array, start = 0, end = from.length): void {
    this.reserve(end - start)
    this.bytes.set(from.subarray(start, end), this.length)
    this.length += end - start
  }

  /** An array header as msgpackr writes it. */
  array(count: number): void {
    this.reserve(5)
    const b = this.bytes
    if (count < 0x10) b[this.length++] = 0x90 | count
    else if (count < 0x10000) {
      b[this.length++] = 0xdc
      b[this.length++] = count >> 8
      b[this.length++] = count & 0xff
    } else {
      b[this.length++] = 0xdd
      b[this.length++] = count >>> 24
      b[this.length++] = (count >> 16) & 0xff
      b[this.length++] = (count >> 8) & 0xff
      b[this.length++] = count & 0xff
    }
  }

  /** Encodes `value` with core's codec into the sink; returns the elements it holds. */
  encoded(value: unknown): number {
    const bytes = encodeCheckedView(value as never)
    this.copy(bytes)
    return elementsOf(bytes)
  }
}

const frameSink = new Sink()
const recordSink = new Sink()

/** Elements counted by the last {@link skip}. */
let counted = 0

/**
 * The position after the msgpack value at `at` (trusted bytes: the store's own), adding
 * the array items and map entries it holds to {@link counted}; -1 past `end`.
 */
function skip(b: Uint8Array, at: number, end: number): number {
  let remaining = 1
  let pos = at
  while (remaining > 0) {
    if (pos >= end) return -1
    remaining--
    const t = b[pos++] as number
    if (t < 0x80 || t >= 0xe0 || t === 0xc0 || t === 0xc2 || t === 0xc3) continue
    if (t < 0x90) {
      counted += t & 0x0f
      remaining += (t & 0x0f) * 2
    } else if (t < 0xa0) {
      counted += t & 0x0f
      remaining += t & 0x0f
    } else if (t < 0xc0) pos += t & 0x1f
    else {
      switch (t) {
        case 0xc4: case 0xd9: pos += 1 + (b[pos] as number); break
        case 0xc5: case 0xda: pos += 2 + uint(b, pos, 2); break
        case 0xc6: case 0xdb: pos += 4 + uint(b, pos, 4); break
        case 0xc7: pos += 2 + (b[pos] as number); break
        case 0xc8: pos += 3 + uint(b, pos, 2); break
        case 0xc9: pos += 5 + uint(b, pos, 4); break
        case 0xca: case 0xce: case 0xd2: pos += 4; break
        case 0xcb: case 0xcf: case 0xd3: pos += 8; break
        case 0xcc: case 0xd0: pos += 1; break
        case 0xcd: case 0xd1: pos += 2; break
        case 0xd4: pos += 2; break
        case 0xd5: pos += 3; break
        case 0xd6: pos += 5; break
        case 0xd7: pos += 9; break
        case 0xd8: pos += 17; break
        case 0xdc: case 0xde: {
          const n = uint(b, pos, 2)
          pos += 2
          counted += n
          remaining += t === 0xde ? n * 2 : n
          break
        }
        case 0xdd: case 0xdf: {
          const n = uint(b, pos, 4)
          pos += 4
          counted += n
          remaining += t === 0xdf ? n * 2 : n
          break
        }
        default: return -1
      }
    }
  }
  return pos > end ? -1 : pos
}

function uint(b: Uint8Array, at: number, size: number): number {
  let value = 0
  for (let i = 0; i < size; i++) value = value * 256 + (b[at + i] as number)
  return value
}

/** Array items plus map entries in one encoded value. */
function elementsOf(bytes: Uint8Array): number {
  counted = 0
  skip(bytes, 0, bytes.length)
  return counted
}

/** Where the last msgpack string {@link text} found lies: its header, its text. */
let textAt = 0
let textStart = 0
let textEnd = 0
function text(b: Uint8Array, at: number): boolean {
  const t = b[at] as number
  if (t >= 0xa0 && t < 0xc0) textStart = at + 1, textEnd = textStart + (t & 0x1f)
  else if (t === 0xd9) textStart = at + 2, textEnd = textStart + (b[at + 1] as number)
  else if (t === 0xda) textStart = at + 3, textEnd = textStart + uint(b, at + 1, 2)
  else if (t === 0xdb) textStart = at + 5, textEnd = textStart + uint(b, at + 1, 4)
  else return false
  textAt = at
  return true
}

/** The msgpack string whose header is at `at` and whose text ends at `end`, decoded; undefined when it is not well-formed. */
function decodeText(b: Uint8Array, at: number, end: number): string | undefined {
  try {
    return decode(b.subarray(at, end), UNBOUNDED) as string
  } catch {
    return undefined
  }
}

function same(a: Uint8Array, aStart: number, aEnd: number, b: Uint8Array, bStart: number): boolean {
  for (let i = aStart, j = bStart; i < aEnd; i++, j++) if (a[i] !== b[j]) return false
  return true
}

function sameRange(b: Uint8Array, aStart: number, aEnd: number, bStart: number, bEnd: number): boolean {
  return aEnd - aStart === bEnd - bStart && same(b, aStart, aEnd, b, bStart)
}

/** Strings interned by their UTF-8 bytes (no string built for one seen before). */
class ByteTable {
  readonly entries: string[] = []
  readonly #bytes: Uint8Array[] = []

  /**
   * The index of the text `b[start, end)`, adding it while below `limit`; -1 when full, -2
   * when it is not well-formed UTF-8. The text is the end of the msgpack string whose header
   * is at `at`, past its first `skip` (ASCII) characters.
   */
  ref(b: Uint8Array, start: number, end: number, limit: number, at: number, skip = 0, hint = 0): number {
    const n = this.#bytes.length
    for (let k = 0; k < n; k++) {
      const i = (hint + k) % n
      const entry = this.#bytes[i] as Uint8Array
      if (entry.length === end - start && same(b, start, end, entry, 0)) return i
    }
    if (n >= limit) return -1
    const decoded = decodeText(b, at, end)
    if (decoded === undefined) return -2
    this.#bytes.push(b.slice(start, end))
    this.entries.push(decoded.slice(skip))
    return n
  }
}

/** Reads the stamp string `b[start, end)` into `stamps`, as `StampWriter.write` would; false when it would not. */
function writeStamp(stamps: StampWriter, replicas: ByteTable, b: Uint8Array, at: number, start: number, end: number): boolean {
  if (end - start <= 16 || b[start + 10] !== 45 || b[start + 15] !== 45) return false
  let wall = 0
  for (let i = start; i < start + 10; i++) {
    const digit = base36(b[i] as number)
    if (digit < 0) return false
    wall = wall * 36 + digit
  }
  let counter = 0
  for (let i = start + 11; i < start + 15; i++) {
    const digit = base36(b[i] as number)
    if (digit < 0 || digit > 15) return false
    counter = counter * 16 + digit
  }
  if (wall > MAX_WALL) return false
  const index = replicas.ref(b, start + 16, end, Infinity, at, 16)
  if (index < 0) return false
  const replica = replicas.entries[index] as string
  if (replica.length > MAX_REPLICA_LENGTH) return false
  return stamps.writeParsed(wall, counter, replica)
}

function base36(code: number): number {
  return code >= 48 && code <= 57 ? code - 48 : code >= 97 && code <= 122 ? code - 87 : -1
}

/** The stored record at `at`: where its key string and its state lie; false when it is not `[key, seq, state]`. */
let keyStart = 0
let stateStart = 0
function storedRecord(b: Uint8Array, at: number, end: number): boolean {
  if (b[at] !== 0x93 || !text(b, at + 1)) return false
  keyStart = at + 1
  stateStart = skip(b, textEnd, end)
  return stateStart >= 0
}

/**
 * The `changes` frame of `message` (its `changes` list is ignored: the records
 * `[from, to)` of `records` of map `map` take its place) in wire `version`, with its element
 * count; undefined when a record is not one this packer handles (see the module comment).
 */
export function encodeStoredChanges(message: NumberedChangesMessage, records: StoredRecords, from: number, to: number, kind: CollectionKind, map: string, version = 1): CountedFrame | undefined {
  if (version >= 2 && to > from) {
    if (kind !== 'lww') return undefined
    return packedFrame(message, records, from, to, map)
  }
  const sink = frameSink
  sink.length = 0
  let elements = envelope(sink, message, false)
  sink.encoded('changes')
  sink.array(to - from)
  elements += to - from
  // `{ kind, map, key, state }` up to the key's value, the same for every change.
  const head = sink.length
  sink.byte(0x84)
  sink.encoded('kind')
  sink.encoded(kind)
  sink.encoded('map')
  sink.encoded(map)
  sink.encoded('key')
  const prefix = sink.bytes.slice(head, sink.length)
  sink.length = head
  const stateLabel = Uint8Array.from(encodeCheckedView('state'))
  const b = records.bytes
  for (let r = from; r < to; r++) {
    const end = records.offsets[r + 1] as number
    if (!storedRecord(b, records.offsets[r] as number, end)) return undefined
    counted = 0
    if (skip(b, stateStart, end) !== end) return undefined
    elements += 4 + counted
    sink.copy(prefix)
    sink.copy(b, keyStart, textEnd)
    sink.copy(stateLabel)
    sink.copy(b, stateStart, end)
  }
  elements += rest(sink, message, false)
  if (Number.isNaN(elements)) return undefined
  return { frame: sink.bytes.slice(0, sink.length), elements }
}

/** The message's fields before `changes` (all of them but `changes` when `packed`), map header first; returns their elements. */
function envelope(sink: Sink, message: NumberedChangesMessage, packed: boolean): number {
  let keys = 0
  for (const key in message) if (Object.hasOwn(message, key) && (message as Record<string, unknown>)[key] !== undefined) keys++
  if (keys >= 0x10) return NaN
  sink.byte(0x80 | keys)
  let elements = keys
  for (const key in message) {
    const value = (message as Record<string, unknown>)[key]
    if (!Object.hasOwn(message, key) || value === undefined) continue
    if (key === 'changes') {
      if (!packed) return elements
      continue
    }
    sink.encoded(key)
    elements += sink.encoded(value)
  }
  return elements
}

/** The message's fields after `changes`; returns their elements. */
function rest(sink: Sink, message: NumberedChangesMessage, packed: boolean): number {
  if (packed) return 0
  let elements = 0
  let past = false
  for (const key in message) {
    const value = (message as Record<string, unknown>)[key]
    if (!Object.hasOwn(message, key) || value === undefined) continue
    if (key === 'changes') past = true
    else if (past) {
      sink.encoded(key)
      elements += sink.encoded(value)
    }
  }
  return elements
}

/** The v2 frame (`wire-v2.ts`: the envelope without `changes`, then `batch`) of LWW records; see {@link encodeStoredChanges}. */
function packedFrame(message: NumberedChangesMessage, records: StoredRecords, from: number, to: number, map: string): CountedFrame | undefined {
  const stamps = new StampWriter()
  const replicas = new ByteTable()
  const names = new ByteTable()
  const out = recordSink
  out.length = 0
  const b = records.bytes
  let elements = 0
  for (let r = from; r < to; r++) {
    const end = records.offsets[r + 1] as number
    if (!storedRecord(b, records.offsets[r] as number, end)) return undefined
    const keyEnd = textEnd
    // The state: a map of `fields` and `deleted`, in either order.
    let pos = stateStart
    if (b[pos++] !== 0x82) return undefined
    let fieldsAt = -1
    let deletedAt = -1
    for (let e = 0; e < 2; e++) {
      let valueAt: number
      if (same(b, pos, pos + FIELDS.length, FIELDS, 0)) fieldsAt = valueAt = pos + FIELDS.length
      else if (same(b, pos, pos + DELETED.length, DELETED, 0)) deletedAt = valueAt = pos + DELETED.length
      else return undefined
      pos = skip(b, valueAt, end)
      if (pos < 0) return undefined
    }
    if (pos !== end || fieldsAt < 0 || deletedAt < 0) return undefined
    // The fields: [name, value, stamp] each; note where the stamps are, and whether all are one.
    const t = b[fieldsAt] as number
    let count: number
    let at = fieldsAt
    if (t >= 0x90 && t < 0xa0) count = t & 0x0f, at += 1
    else if (t === 0xdc) count = uint(b, at + 1, 2), at += 3
    else return undefined
    const fieldsStart = at
    let sharedAt = -1
    let sharedStart = -1
    let sharedEnd = -1
    let shared = count > 0
    for (let i = 0; i < count; i++) {
      if (b[at] !== 0x93 || !text(b, at + 1)) return undefined
      at = skip(b, textEnd, end)
      if (at < 0 || !text(b, at)) return undefined
      if (i === 0) sharedAt = textAt, sharedStart = textStart, sharedEnd = textEnd
      else if (shared && !sameRange(b, sharedStart, sharedEnd, textStart, textEnd)) shared = false
      at = textEnd
    }
    const deletedType = b[deletedAt] as number
    if (deletedType !== 0xc0) {
      if (!text(b, deletedAt) || !writeStamp(stamps, replicas, b, textAt, textStart, textEnd)) return undefined
    }
    if (shared && !writeStamp(stamps, replicas, b, sharedAt, sharedStart, sharedEnd)) return undefined
    out.array(3 + count * 2)
    out.byte((deletedType === 0xc0 ? 0 : LWW_DELETED) | (shared ? LWW_SHARED : 0))
    out.byte(0)
    out.copy(b, keyStart, keyEnd)
    elements += 3 + count * 2
    at = fieldsStart
    for (let i = 0; i < count; i++) {
      text(b, at + 1)
      const nameAt = at + 1
      const valueAt = textEnd
      const index = names.ref(b, textStart, textEnd, SMALL_TABLE, textAt, 0, i)
      if (index === -2) return undefined
      if (index >= 0) out.byte(index)
      else out.copy(b, nameAt, valueAt)
      counted = 0
      const valueEnd = skip(b, valueAt, end)
      elements += counted
      out.copy(b, valueAt, valueEnd)
      text(b, valueEnd)
      if (!shared && !writeStamp(stamps, replicas, b, textAt, textStart, textEnd)) return undefined
      at = textEnd
    }
  }
  const sink = frameSink
  sink.length = 0
  elements += envelope(sink, message, true)
  sink.encoded('batch')
  sink.array(7)
  elements += 7 + (to - from)
  sink.encoded(FORMAT)
  sink.encoded(stamps.base)
  elements += sink.encoded(replicas.entries)
  elements += sink.encoded([map])
  elements += sink.encoded(names.entries)
  sink.encoded(stamps.bytes())
  sink.array(to - from)
  sink.copy(out.bytes, 0, out.length)
  if (Number.isNaN(elements)) return undefined
  return { frame: sink.bytes.slice(0, sink.length), elements }
}

/** The key of the stored record `bytes` (a stored `[key, seq, state]`). */
export function storedRecordKey(bytes: Uint8Array, start = 0): string | undefined {
  if (bytes[start] !== 0x93 || !text(bytes, start + 1)) return undefined
  return decodeText(bytes, textAt, textEnd)
}
