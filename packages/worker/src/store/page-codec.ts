/**
 * The compact page format of database layout version 2: how one page of records is laid
 * out as a single IndexedDB value.
 *
 * Version 1 stored a page as `{ entries: Map<key, value> }`, so IndexedDB's structured clone
 * walked, per LWW record, an object, a `fields` array and one `[name, value, stamp]` array
 * per field, and wrote every stamp (a ~45-character string with the writer's replica id) in
 * full, once per field: the stamps outweighed the data, and cloning them in and out was
 * most of what a commit or a cold start cost.
 *
 * Version 2 keeps one flat array per record and a page-wide table of the distinct stamps
 * and field names, which records refer to by index (a record written by one `set` has one
 * stamp for all its fields, so a page of 64 such records holds 64 stamps, not 448):
 *
 * ```
 * { k: [key, …],                  keys, in the order of `e`
 *   s: [stamp, …],                the distinct stamps of the page's LWW records
 *   n: [fieldName, …],            the distinct field names
 *   e: [entry, …] }               per key: an LWW record as
 *                                 [deletedStamp | -1, name, value, stamp, name, value, stamp, …]
 *                                 (numbers index `s` and `n`), or any other value as { v: value }
 * ```
 *
 * Decoding builds the same values the page was given (`{ fields, deleted }` records
 * included), and shares each stamp and field-name string among the records of its page.
 * Pure and synchronous: no I/O, so it is tested on its own.
 */
import { lwwView, setOwnField, type LwwRecordState, type RecordValue, type Value } from '@outpost/core'

/** One stored page (layout version 2); see the module comment. */
export interface StoredPage {
  readonly k: string[]
  readonly s: string[]
  readonly n: string[]
  readonly e: unknown[]
}

/** A value that is not a compactable LWW record, stored as is. */
interface RawEntry {
  readonly v: Value
}

/** True when `value` is exactly an LWW record state `{ fields: [[name, value, stamp]…], deleted }` (nothing else on it), so it round-trips compactly. */
export function isLwwRecord(value: unknown): value is { fields: [string, Value, string][]; deleted: string | null } {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || Object.getPrototypeOf(value) !== Object.prototype) return false
  const record = value as { fields?: unknown; deleted?: unknown }
  if (!Array.isArray(record.fields) || !(record.deleted === null || typeof record.deleted === 'string')) return false
  if (Object.keys(value).length !== 2) return false
  for (const field of record.fields) {
    if (!Array.isArray(field) || field.length !== 3 || typeof field[0] !== 'string' || typeof field[2] !== 'string') return false
  }
  return true
}

/** Lays out `entries` as one compact page. */
export function encodePage(entries: Iterable<readonly [string, Value]>): StoredPage {
  const k: string[] = []
  const e: unknown[] = []
  const s: string[] = []
  const n: string[] = []
  const stampIndex = new Map<string, number>()
  const nameIndex = new Map<string, number>()
  const stamp = (value: string): number => {
    let i = stampIndex.get(value)
    if (i === undefined) {
      i = s.push(value) - 1
      stampIndex.set(value, i)
    }
    return i
  }
  for (const [key, value] of entries) {
    k.push(key)
    if (!isLwwRecord(value)) {
      e.push({ v: value } satisfies RawEntry)
      continue
    }
    const flat: unknown[] = [value.deleted === null ? -1 : stamp(value.deleted)]
    for (const [name, fieldValue, fieldStamp] of value.fields) {
      let ni = nameIndex.get(name)
      if (ni === undefined) {
        ni = n.push(name) - 1
        nameIndex.set(name, ni)
      }
      flat.push(ni, fieldValue, stamp(fieldStamp))
    }
    e.push(flat)
  }
  return { k, s, n, e }
}

/** Calls `visit` with every `[key, value]` of a stored page, in page order. */
export function forEachInPage(page: StoredPage, visit: (key: string, value: Value) => void): void {
  const { k, s, n, e } = page
  for (let i = 0; i < k.length; i++) {
    const entry = e[i]
    if (!Array.isArray(entry)) {
      visit(k[i] as string, (entry as RawEntry).v)
      continue
    }
    const deleted = entry[0] as number
    const fields: [string, unknown, string][] = []
    for (let j = 1; j < entry.length; j += 3) fields.push([n[entry[j] as number] as string, entry[j + 1], s[entry[j + 2] as number] as string])
    visit(k[i] as string, { fields, deleted: deleted < 0 ? null : (s[deleted] as string) } as unknown as Value)
  }
}

/** A stored page as a Map of key → value. */
export function decodePage(page: StoredPage): Map<string, Value> {
  const out = new Map<string, Value>()
  forEachInPage(page, (key, value) => out.set(key, value))
  return out
}

/** Stored pages (of one collection) as one Map of key → value. */
export function decodePages(pages: readonly StoredPage[]): Map<string, Value> {
  const out = new Map<string, Value>()
  for (const page of pages) forEachInPage(page, (key, value) => out.set(key, value))
  return out
}

/** The number of entries a stored page holds (no decoding). */
export function pageSize(page: StoredPage): number {
  return page.k.length
}

/** The value of `key` in a stored page, decoding that entry only. */
export function valueInPage(page: StoredPage, key: string): Value | undefined {
  const i = page.k.indexOf(key)
  if (i < 0) return undefined
  let found: Value | undefined
  forEachInPage({ k: [key], s: page.s, n: page.n, e: [page.e[i]] }, (_, value) => (found = value))
  return found
}

/**
 * Calls `visit` with every key of a stored page of LWW records and what the app sees of
 * it (`lwwView` of its state: alive fields only, `undefined` when none is), built straight
 * from the compact entry: no `{ fields, deleted }` state and no per-field arrays. A cold
 * start's first query reads every record this way and keeps only the rows that match.
 */
export function forEachViewInPage(page: StoredPage, visit: (key: string, view: RecordValue | undefined) => void): void {
  const { k, s, n, e } = page
  for (let i = 0; i < k.length; i++) {
    const entry = e[i]
    if (!Array.isArray(entry)) {
      visit(k[i] as string, lwwView((entry as RawEntry).v as unknown as LwwRecordState))
      continue
    }
    const deletedAt = entry[0] as number
    const deleted = deletedAt < 0 ? null : (s[deletedAt] as string)
    let record: Record<string, Value> | undefined
    for (let j = 1; j < entry.length; j += 3) {
      // Alive: written after the record's tombstone (the same test as core's lwwView).
      if (deleted !== null && !((s[entry[j + 2] as number] as string) > deleted)) continue
      record ??= {}
      setOwnField(record, n[entry[j] as number] as string, entry[j + 1] as Value)
    }
    visit(k[i] as string, record)
  }
}
