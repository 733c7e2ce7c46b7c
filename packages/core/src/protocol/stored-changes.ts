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
import { encodeCheckedView, type CountedFrame } from './codec'
import { ByteTable, Sink, decodeText, found, same, sameRange, skip, text, uint } from './stored-bytes'
import type { NumberedChangesMessage } from './shared-frame'
import { BATCH_FORMAT as FORMAT, LWW_DELETED, LWW_SHARED, SMALL_TABLE } from './batch-layout'
import { MAX_REPLICA_LENGTH, MAX_WALL, StampWriter } from './stamp-stream'

/** Records in their stored form, one after another: record `i` is `bytes[offsets[i], offsets[i + 1])`. */
export interface StoredRecords {
  readonly bytes: Uint8Array
  /** `count + 1` offsets into `bytes`. */
  readonly offsets: Uint32Array
  readonly count: number
}


const ascii = (chars: string): Uint8Array => Uint8Array.from(chars, (c) => c.charCodeAt(0))
/** The msgpack strings `fields` and `deleted`: the keys of a stored LWW state. */
const FIELDS = ascii('\xa6fields')
const DELETED = ascii('\xa7deleted')

const frameSink = new Sink()
const recordSink = new Sink()

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
  stateStart = skip(b, found.end, end)
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
    found.elements = 0
    if (skip(b, stateStart, end) !== end) return undefined
    elements += 4 + found.elements
    sink.copy(prefix)
    sink.copy(b, keyStart, found.end)
    sink.copy(stateLabel)
    sink.copy(b, stateStart, end)
  }
  elements += rest(sink, message)
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
function rest(sink: Sink, message: NumberedChangesMessage): number {
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
    const keyEnd = found.end
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
      at = skip(b, found.end, end)
      if (at < 0 || !text(b, at)) return undefined
      if (i === 0) sharedAt = found.at, sharedStart = found.start, sharedEnd = found.end
      else if (shared && !sameRange(b, sharedStart, sharedEnd, found.start, found.end)) shared = false
      at = found.end
    }
    const deletedType = b[deletedAt] as number
    if (deletedType !== 0xc0) {
      if (!text(b, deletedAt) || !writeStamp(stamps, replicas, b, found.at, found.start, found.end)) return undefined
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
      const valueAt = found.end
      const index = names.ref(b, found.start, found.end, SMALL_TABLE, found.at, 0, i)
      if (index === -2) return undefined
      if (index >= 0) out.byte(index)
      else out.copy(b, nameAt, valueAt)
      found.elements = 0
      const valueEnd = skip(b, valueAt, end)
      elements += found.elements
      out.copy(b, valueAt, valueEnd)
      text(b, valueEnd)
      if (!shared && !writeStamp(stamps, replicas, b, found.at, found.start, found.end)) return undefined
      at = found.end
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
  return decodeText(bytes, found.at, found.end)
}
