/**
 * A packed change batch (wire v2): how a `Change[]` is written and read back. The message
 * level (which messages carry one, and where) is in `wire-v2.ts`.
 *
 *   batch   = [format, base, replicas, maps, names, stamps, records]
 *   format  = 1 (a reader refuses a format it does not know: bump it to change the layout)
 *   base    = wall time (ms) the first stamp's delta starts from
 *   replicas, maps, names = each distinct replica id, map name, field name of the frame once
 *   stamps  = every stamp of the frame, in record order (`stamp-stream.ts`)
 *   records = one array per change, in order:
 *     lww      [flags, map, key, (name, value)…]   flags = 0 | DELETED (4) | SHARED (8)
 *              stamps: the tombstone (DELETED), then one for all fields (SHARED) or one per field
 *     or       [1, map, key, addCount, removeCount, value×addCount]
 *              stamps: the tag of each add, then each removed tag
 *     counter  [2, map, key, (replica, increments, decrements)…]
 *
 * A map, field name or counter replica is an index into its table or the string itself:
 * those tables stop growing at 128 entries (one-byte indices). A packed frame is never
 * larger than the v1 frame of the same message and holds no more elements (beyond a few
 * for its header, which the frame envelope reserves), so a batch cut to fit by v1 sizes
 * (`packBySize` with `measure`) fits too; `wire-v2.property.test.ts` checks both.
 *
 * Reading checks the structure (format, tables, indices in range, the stamp stream) and
 * holds each change to the change schema's rules as it is built, so the schema need not
 * walk the list again: validation happens once. Work is linear in the frame, which the
 * codec's pre-scan has already bounded.
 */
import { InvalidMessageError } from '../errors'
import type { Change, ReplicaId, Stamp } from '../types'
import { isWellFormed } from '../unicode'
import { MESSAGE_LIMITS } from './messages'
import { BATCH_FORMAT as FORMAT, KIND_COUNTER, KIND_LWW, KIND_OR, LWW_DELETED, LWW_SHARED, SMALL_TABLE } from './batch-layout'
import { MAX_WALL, StampReader, StampWriter, malformedBatch } from './stamp-stream'

// ───────────────────────────── packing ─────────────────────────────

/** Interns strings in a table of at most {@link SMALL_TABLE} entries; beyond it they travel as themselves. */
class SmallTable {
  readonly entries: string[] = []
  readonly #index = new Map<string, number>()

  ref(text: string): number | string {
    let index = this.#index.get(text)
    if (index === undefined) {
      if (this.entries.length >= SMALL_TABLE) return text
      index = this.entries.length
      this.entries.push(text)
      this.#index.set(text, index)
    }
    return index
  }
}

type Shaped = Record<string, unknown>
const isObject = (value: unknown): value is Shaped => typeof value === 'object' && value !== null && !Array.isArray(value)

/**
 * Packs `changes` into a batch, or returns undefined when something in them is not what
 * a clock and the write API produce (the caller then sends the list as in v1).
 */
export function packChanges(changes: readonly unknown[]): unknown[] | undefined {
  const stamps = new StampWriter()
  const maps = new SmallTable()
  const names = new SmallTable()
  const records: unknown[][] = []
  for (const change of changes) {
    if (!isObject(change) || typeof change['map'] !== 'string' || typeof change['key'] !== 'string') return undefined
    const state = change['state']
    const record: unknown[] = [0, maps.ref(change['map']), change['key']]
    if (change['kind'] === 'lww') {
      if (!isObject(state) || !Array.isArray(state['fields'])) return undefined
      const deleted = state['deleted']
      if (deleted !== null && typeof deleted !== 'string') return undefined
      const fields = state['fields'] as readonly unknown[]
      let shared: string | undefined
      for (let i = 0; i < fields.length; i++) {
        const entry = fields[i]
        if (!Array.isArray(entry) || entry.length !== 3 || typeof entry[0] !== 'string' || typeof entry[2] !== 'string') return undefined
        if (i === 0) shared = entry[2]
        else if (entry[2] !== shared) shared = undefined
      }
      record[0] = KIND_LWW | (deleted === null ? 0 : LWW_DELETED) | (shared === undefined ? 0 : LWW_SHARED)
      if (deleted !== null && !stamps.write(deleted)) return undefined
      if (shared !== undefined && !stamps.write(shared)) return undefined
      for (const entry of fields as readonly (readonly [string, unknown, string])[]) {
        record.push(names.ref(entry[0]), entry[1])
        if (shared === undefined && !stamps.write(entry[2])) return undefined
      }
    } else if (change['kind'] === 'or') {
      if (!isObject(state) || !Array.isArray(state['adds']) || !Array.isArray(state['removes'])) return undefined
      const adds = state['adds'] as readonly unknown[]
      const removes = state['removes'] as readonly unknown[]
      record[0] = KIND_OR
      record.push(adds.length, removes.length)
      for (const add of adds) {
        if (!Array.isArray(add) || add.length !== 2 || typeof add[0] !== 'string' || !stamps.write(add[0])) return undefined
        record.push(add[1])
      }
      for (const tag of removes) if (typeof tag !== 'string' || !stamps.write(tag)) return undefined
    } else if (change['kind'] === 'counter') {
      if (!Array.isArray(state)) return undefined
      record[0] = KIND_COUNTER
      for (const entry of state as readonly unknown[]) {
        if (!Array.isArray(entry) || entry.length !== 3 || typeof entry[0] !== 'string') return undefined
        // An index costs one byte, never more than the id it replaces (at least one byte as a string).
        const index = stamps.replicaIndex(entry[0], SMALL_TABLE)
        record.push(index === undefined || index >= SMALL_TABLE ? entry[0] : index, entry[1], entry[2])
      }
    } else {
      return undefined
    }
    records.push(record)
  }
  return [FORMAT, stamps.base, stamps.replicas, maps.entries, names.entries, stamps.bytes(), records]
}

// ───────────────────────────── unpacking ─────────────────────────────

/** Changes built by {@link unpackChanges} that passed the change schema's rules: `parseChange` takes them as they are. */
const checked = new WeakSet<object>()

/** @internal True when `change` came out of a packed batch already held to the change schema's rules. */
export function isCheckedChange(change: unknown): boolean {
  return typeof change === 'object' && change !== null && checked.has(change)
}

/** Changes of a batch, and the first change-schema rule one of them breaks. */
export interface UnpackedChanges {
  readonly changes: Change[]
  /** The first broken rule, as `changes[i].path: problem`; undefined when every change is valid. */
  readonly problem: string | undefined
}

/** What reading one batch needs. */
interface Batch {
  readonly stamps: StampReader
  readonly replicas: readonly string[]
  readonly maps: readonly string[]
  readonly names: readonly string[]
  readonly mapProblems: readonly (string | undefined)[]
  readonly nameProblems: readonly (string | undefined)[]
}

/** A table of a batch: a list of strings. */
function table(value: unknown, what: string): string[] {
  if (!Array.isArray(value) || !value.every((entry) => typeof entry === 'string')) throw malformedBatch('batch', `${what} must be a list of strings`)
  return value as string[]
}

/**
 * Unpacks a batch written by {@link packChanges}, holding each change to the change
 * schema's rules as it is built. Throws {@link InvalidMessageError} when the batch is
 * malformed. A change that breaks a rule is named in `problem`; with `mark`, every change
 * that breaks none is marked checked (see {@link isCheckedChange}), so a caller may refuse a
 * malformed one alone, as v1 does with one malformed change of an `ops` batch. A caller
 * that refuses the whole batch on a `problem` (a `changes` message) needs no marks.
 */
export function unpackChanges(batch: unknown, mark = true): UnpackedChanges {
  if (!Array.isArray(batch) || batch.length !== 7) throw malformedBatch('batch', 'a batch must be a list of 7 items')
  const [format, base, replicaList, mapList, nameList, stream, records] = batch as unknown[]
  if (format !== FORMAT) throw malformedBatch('batch', `format ${describe(format)} is not one this build reads (${FORMAT}); upgrade the older side`)
  if (typeof base !== 'number' || !Number.isSafeInteger(base) || base < 0 || base > MAX_WALL) throw malformedBatch('batch', `the base wall time must be an integer in 0..${MAX_WALL}`)
  const replicas = table(replicaList, 'the replica table')
  const maps = table(mapList, 'the map table')
  const names = table(nameList, 'the field-name table')
  if (!(stream instanceof Uint8Array)) throw malformedBatch('batch', 'the stamp stream must be bytes')
  if (!Array.isArray(records)) throw malformedBatch('batch', 'the records must be a list')
  const context: Batch = {
    stamps: new StampReader(base, replicas, stream),
    replicas,
    maps,
    names,
    mapProblems: maps.map(mapNameProblem),
    nameProblems: names.map(fieldNameProblem),
  }
  const changes: Change[] = new Array(records.length)
  let problem: string | undefined
  // One cursor for every record: nothing per record but the change itself.
  const record = new RecordReader()
  for (let r = 0; r < records.length; r++) {
    const items = records[r] as unknown
    if (!Array.isArray(items)) throw malformedBatch(`records[${r}]`, 'a record must be a list')
    record.start(items, r)
    const change = unpackRecord(record, context)
    changes[r] = change
    if (record.problem !== undefined) problem ??= `changes[${r}]${record.problem}`
    else if (mark) checked.add(change)
  }
  if (!context.stamps.done) throw malformedBatch('batch', 'the stamp stream holds more stamps than the records use')
  return { changes, problem }
}

/**
 * A cursor over the packed records of a batch, one at a time ({@link start}): structural
 * failures throw, broken schema rules are noted. Its place in the batch ({@link where}) is
 * only spelt out for an error.
 */
class RecordReader {
  items: readonly unknown[] = []
  pos = 0
  /** The record's index in the batch. */
  #record = 0
  /** The first rule of the change schema this record breaks (a path within the change, then the problem). */
  problem: string | undefined

  /** Moves to record `index` of the batch, whose items are `items`. */
  start(items: readonly unknown[], index: number): void {
    this.items = items
    this.pos = 0
    this.#record = index
    this.problem = undefined
    this.index = -1
  }

  /** The record's place, for an error message. */
  get where(): string {
    return `records[${this.#record}]`
  }

  /** The next item; throws when the record ends before it. */
  take(what: string): unknown {
    if (this.pos >= this.items.length) throw malformedBatch(this.where, `it ends where ${what} was expected`)
    return this.items[this.pos++]
  }

  /** A count: an integer from 0 to `max`. */
  count(what: string, max: number): number {
    const value = this.take(what)
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) throw malformedBatch(this.where, `${what} must be an integer in 0..${max}`)
    return value
  }

  /** Where the last {@link text} came from: its index in the table, or -1 when it travelled as itself. */
  index = -1

  /** A string slot: an index into `table`, or the string itself (see {@link index}). */
  text(table: readonly string[], what: string): string {
    const item = this.take(what)
    if (typeof item === 'string') {
      this.index = -1
      return item
    }
    if (typeof item !== 'number' || !Number.isInteger(item) || item < 0 || item >= table.length) throw malformedBatch(this.where, `${what} index ${describe(item)} is outside its table of ${table.length}`)
    this.index = item
    return table[item] as string
  }

  /** Remembers `problem` (when there is one and none came before). */
  note(problem: string | undefined): void {
    if (problem !== undefined) this.problem ??= problem
  }
}

/** Code points in `text` (what the schema's string lengths count), only counted past a limit in code units. */
function longer(text: string, max: number): boolean {
  if (text.length <= max) return false
  let count = text.length
  for (let i = 0; i < text.length - 1; i++) {
    if ((text.charCodeAt(i) & 0xfc00) === 0xd800 && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      count--
      i++
    }
  }
  return count > max
}

const NOT_WELL_FORMED = 'must be well-formed text (no lone surrogate)'

function mapNameProblem(map: string): string | undefined {
  if (map.length === 0 || longer(map, MESSAGE_LIMITS.maxMapNameLength)) return `.map: must be 1..${MESSAGE_LIMITS.maxMapNameLength} characters`
  return isWellFormed(map) ? undefined : `.map: ${NOT_WELL_FORMED}`
}

function fieldNameProblem(name: string): string | undefined {
  return isWellFormed(name) ? undefined : `: a field name ${NOT_WELL_FORMED}`
}

function replicaProblem(replica: string): string | undefined {
  return replica.length === 0 || longer(replica, MESSAGE_LIMITS.maxReplicaIdLength) ? `: a replica id must be 1..${MESSAGE_LIMITS.maxReplicaIdLength} characters` : undefined
}

/** A counter total as the schema takes it: a finite number, at least 0. */
function isTotal(value: unknown): boolean {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0
}

function unpackRecord(record: RecordReader, batch: Batch): Change {
  const stamps = batch.stamps
  // A stamp read gets the record itself: its place is spelt out only for an error.
  const head = record.take('the record kind')
  const map = record.text(batch.maps, 'map')
  record.note(record.index < 0 ? mapNameProblem(map) : batch.mapProblems[record.index])
  const key = record.take('the key')
  if (typeof key !== 'string') throw malformedBatch(record.where, 'the key must be a string')
  if (longer(key, MESSAGE_LIMITS.maxKeyLength)) record.note(`.key: must be at most ${MESSAGE_LIMITS.maxKeyLength} characters`)
  else if (!isWellFormed(key)) record.note(`.key: ${NOT_WELL_FORMED}`)
  if (head === KIND_OR) {
    const addCount = record.count('the add count', record.items.length)
    const removeCount = record.count('the remove count', Number.MAX_SAFE_INTEGER)
    if (record.items.length !== record.pos + addCount) throw malformedBatch(record.where, `a set with ${addCount} adds must have ${addCount} values`)
    if (addCount > MESSAGE_LIMITS.maxSetEntries) record.note(`.state.adds: at most ${MESSAGE_LIMITS.maxSetEntries} adds`)
    if (removeCount > MESSAGE_LIMITS.maxSetEntries) record.note(`.state.removes: at most ${MESSAGE_LIMITS.maxSetEntries} removes`)
    const adds: (readonly [Stamp, unknown])[] = new Array(addCount)
    for (let i = 0; i < addCount; i++) adds[i] = [stamps.read(record), record.take('an added value')]
    // Bounded by the stream: each read consumes at least three bytes or throws.
    const removes: Stamp[] = []
    for (let i = 0; i < removeCount; i++) removes.push(stamps.read(record))
    return { kind: 'or', map, key, state: { adds, removes } } as Change
  }
  if (head === KIND_COUNTER) {
    const state: (readonly [ReplicaId, unknown, unknown])[] = []
    while (record.pos < record.items.length) {
      const replica = record.text(batch.replicas, 'replica') as ReplicaId
      const problem = replicaProblem(replica)
      if (problem !== undefined) record.note(`.state[${state.length}][0]${problem}`)
      const increments = record.take('increments')
      const decrements = record.take('decrements')
      if (!isTotal(increments) || !isTotal(decrements)) record.note(`.state[${state.length}]: totals must be finite numbers of at least 0`)
      state.push([replica, increments, decrements])
    }
    if (state.length > MESSAGE_LIMITS.maxSetEntries) record.note(`.state: at most ${MESSAGE_LIMITS.maxSetEntries} replicas`)
    return { kind: 'counter', map, key, state } as Change
  }
  if (typeof head !== 'number' || (head & ~(LWW_DELETED | LWW_SHARED)) !== KIND_LWW) throw malformedBatch(record.where, `record kind ${describe(head)} is not one this build reads`)
  if ((record.items.length - record.pos) % 2 !== 0) throw malformedBatch(record.where, 'a record must end in (name, value) pairs')
  const deleted = (head & LWW_DELETED) !== 0 ? stamps.read(record) : null
  let shared: Stamp | undefined
  if ((head & LWW_SHARED) !== 0) {
    if (record.pos === record.items.length) throw malformedBatch(record.where, 'a shared stamp without fields')
    shared = stamps.read(record)
  }
  const fields: (readonly [string, unknown, Stamp])[] = new Array((record.items.length - record.pos) / 2)
  for (let i = 0; i < fields.length; i++) {
    const name = record.text(batch.names, 'field name')
    const problem = record.index < 0 ? fieldNameProblem(name) : batch.nameProblems[record.index]
    if (problem !== undefined) record.note(`.state.fields[${i}]${problem}`)
    fields[i] = [name, record.take('a field value'), shared ?? stamps.read(record)]
  }
  if (fields.length > MESSAGE_LIMITS.maxFieldsPerRecord) record.note(`.state.fields: at most ${MESSAGE_LIMITS.maxFieldsPerRecord} fields`)
  return { kind: 'lww', map, key, state: { fields, deleted } } as Change
}

function describe(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value.slice(0, 32)) : typeof value === 'number' || typeof value === 'boolean' || value === null ? String(value) : typeof value
}
