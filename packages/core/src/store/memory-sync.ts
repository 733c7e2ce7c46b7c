/**
 * The {@link SyncStore} half of {@link MemoryStore}: per map, records with their sequence
 * numbers, a change log and Merkle leaf sums, all in memory. The reference the acceptance
 * suite compares durable backends with; values are copied in and out.
 */
import type { CrdtState } from '../crdt/change'
import { isOutpostError, InternalError, InvalidValueError, StoreError, type OutpostError } from '../errors'
import { stateDigest } from '../merkle/hash'
import { addToSum, entryHash, leafPathOf, type HashSum } from '../merkle/node-sums'
import type { CollectionKind, Value } from '../types'
import { cloneValue } from './memory-store'
import { SYNC_TREE_DEPTH, type RecordScan, type SyncLogEntry, type SyncMapInfo, type SyncRecord, type WriteOutcome, type WriteRequest } from './sync-store'

interface MemoryMap {
  kind: CollectionKind
  head: number
  floor: number
  readonly records: Map<string, { state: CrdtState; seq: number }>
  /** Keys in `(leaf path, key)` order, or null when a key was added or removed since. */
  order: string[] | null
  readonly log: SyncLogEntry[]
  readonly leaves: Map<string, HashSum>
}

/** The scan order of records: leaf path, then key (UTF-16 code units). */
export function recordOrder(a: string, b: string): number {
  const la = leafPathOf(a, SYNC_TREE_DEPTH)
  const lb = leafPathOf(b, SYNC_TREE_DEPTH)
  if (la !== lb) return la < lb ? -1 : 1
  return a < b ? -1 : a > b ? 1 : 0
}

function copyState(state: CrdtState): CrdtState {
  return cloneValue(state as unknown as Value) as unknown as CrdtState
}

/** In-memory record data of every map; see the module comment. */
export class MemorySyncData {
  readonly #maps = new Map<string, MemoryMap>()

  info(map: string): SyncMapInfo | undefined {
    const m = this.#maps.get(map)
    return m === undefined ? undefined : { kind: m.kind, head: m.head, floor: m.floor, count: m.records.size }
  }

  maps(): string[] {
    return [...this.#maps.keys()].sort()
  }

  get(map: string, keys: readonly string[]): (SyncRecord | undefined)[] {
    const m = this.#maps.get(map)
    return keys.map((key) => {
      const found = m?.records.get(key)
      return found === undefined ? undefined : { key, state: copyState(found.state), seq: found.seq }
    })
  }

  scan(map: string, scan: RecordScan): SyncRecord[] {
    if (!Number.isInteger(scan.limit) || scan.limit < 1) throw new StoreError(`scan limit must be a positive integer, got ${String(scan.limit)}`)
    const m = this.#maps.get(map)
    if (m === undefined) return []
    m.order ??= [...m.records.keys()].sort(recordOrder)
    const order = m.order
    let start = 0
    if (scan.after !== undefined) {
      const after = scan.after
      let high = order.length
      while (start < high) {
        const middle = (start + high) >>> 1
        if (recordOrder(order[middle] as string, after) <= 0) start = middle + 1
        else high = middle
      }
    }
    const out: SyncRecord[] = []
    for (let i = start; i < order.length && out.length < scan.limit; i++) {
      const key = order[i] as string
      if (scan.within !== undefined && !leafPathOf(key, SYNC_TREE_DEPTH).startsWith(scan.within)) {
        // Leaf order: once past the subtree, nothing further is inside it.
        if (leafPathOf(key, SYNC_TREE_DEPTH) > scan.within) break
        continue
      }
      const found = m.records.get(key) as { state: CrdtState; seq: number }
      out.push({ key, state: copyState(found.state), seq: found.seq })
    }
    return out
  }

  readLog(map: string, afterSeq: number, limit: number): SyncLogEntry[] {
    const m = this.#maps.get(map)
    if (m === undefined) return []
    const out: SyncLogEntry[] = []
    for (const entry of m.log) {
      if (entry.seq <= afterSeq) continue
      out.push(entry.before === undefined ? { seq: entry.seq, key: entry.key } : { seq: entry.seq, key: entry.key, before: cloneValue(entry.before) })
      if (out.length >= limit) break
    }
    return out
  }

  leafSums(map: string): { head: number; leaves: [string, HashSum][] } {
    const m = this.#maps.get(map)
    if (m === undefined) return { head: 0, leaves: [] }
    return { head: m.head, leaves: [...m.leaves].map(([leaf, sum]) => [leaf, { ...sum }]) }
  }

  /** Runs the requests as one transaction: decisions against a working copy, applied only if none of them threw unexpectedly. */
  apply(requests: readonly WriteRequest[]): WriteOutcome[] {
    // Working copies of the touched records, so a failure midway writes nothing.
    const staged = new Map<string, Map<string, { state: CrdtState; seq: number } | undefined>>()
    const heads = new Map<string, number>()
    const kinds = new Map<string, CollectionKind>()
    const logs: { map: string; entry: SyncLogEntry; previous: SyncRecord | undefined; state: CrdtState }[] = []
    const outcomes: WriteOutcome[] = []
    for (const request of requests) {
      const m = this.#maps.get(request.map)
      let mapStage = staged.get(request.map)
      if (mapStage === undefined) {
        mapStage = new Map()
        staged.set(request.map, mapStage)
      }
      const raw = mapStage.has(request.key) ? mapStage.get(request.key) : m?.records.get(request.key)
      const current: SyncRecord | undefined = raw === undefined ? undefined : { key: request.key, state: copyState(raw.state), seq: raw.seq }
      let decision
      try {
        // The store's kind is the truth (another writer may have fixed it a moment ago): refuse this change alone.
        const held = kinds.get(request.map) ?? m?.kind
        if (held !== undefined && held !== request.kind) throw new InvalidValueError(`Map ${request.map} holds ${held} data; this change is ${request.kind}. Use a different map name`, { map: request.map, kind: held })
        decision = request.decide(current)
      } catch (error) {
        if (!isOutpostError(error)) throw new InternalError(`a write decision failed unexpectedly: ${error instanceof Error ? error.message : String(error)}`)
        outcomes.push({ status: 'refused', error: error as OutpostError })
        continue
      }
      if (decision === undefined) {
        outcomes.push({ status: 'unchanged', current })
        continue
      }
      kinds.set(request.map, request.kind)
      const seq = (heads.get(request.map) ?? m?.head ?? 0) + 1
      heads.set(request.map, seq)
      const state = copyState(decision.state)
      mapStage.set(request.key, { state, seq })
      logs.push({ map: request.map, entry: decision.before === undefined ? { seq, key: request.key } : { seq, key: request.key, before: cloneValue(decision.before) }, previous: current, state })
      outcomes.push({ status: 'applied', seq, state: copyState(state), previous: current })
    }
    // Commit: nothing below can fail.
    for (const { map, entry, previous, state } of logs) {
      let m = this.#maps.get(map)
      if (m === undefined) {
        m = { kind: kinds.get(map) as CollectionKind, head: 0, floor: 0, records: new Map(), order: null, log: [], leaves: new Map() }
        this.#maps.set(map, m)
      }
      if (!m.records.has(entry.key)) m.order = null
      m.records.set(entry.key, { state, seq: entry.seq })
      m.head = entry.seq
      m.log.push(entry)
      const leaf = leafPathOf(entry.key, SYNC_TREE_DEPTH)
      let sum = m.leaves.get(leaf)
      if (sum === undefined) {
        sum = { hi: 0, lo: 0, count: 0 }
        m.leaves.set(leaf, sum)
      }
      if (previous !== undefined) addToSum(sum, entryHash(entry.key, stateDigest(m.kind, previous.state)), -1)
      addToSum(sum, entryHash(entry.key, stateDigest(m.kind, state)), 1)
    }
    return outcomes
  }

  trimLog(map: string, throughSeq: number): number {
    const m = this.#maps.get(map)
    if (m === undefined) return 0
    let n = 0
    while (m.log.length > 0 && (m.log[0] as SyncLogEntry).seq <= throughSeq) {
      m.log.shift()
      n++
    }
    m.floor = Math.max(m.floor, Math.min(throughSeq, m.head))
    return n
  }

  remove(map: string, keys: readonly string[], still: (record: SyncRecord) => boolean): string[] {
    const m = this.#maps.get(map)
    if (m === undefined) return []
    const removed: string[] = []
    for (const key of keys) {
      const found = m.records.get(key)
      if (found === undefined || !still({ key, state: copyState(found.state), seq: found.seq })) continue
      m.records.delete(key)
      m.order = null
      const leaf = leafPathOf(key, SYNC_TREE_DEPTH)
      const sum = m.leaves.get(leaf) as HashSum
      addToSum(sum, entryHash(key, stateDigest(m.kind, found.state)), -1)
      if (sum.count === 0) m.leaves.delete(leaf)
      removed.push(key)
    }
    return removed
  }
}
