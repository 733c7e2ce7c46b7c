/**
 * The two resume paths that stream from the store (see `subscriptions.ts`): the whole
 * view (`slice`, in key order) and the keys changed since a cursor (`cursor` replay).
 * Frames are paced by the socket's send buffer and, when the client asked for flow
 * control (hello `window`), by its `credit`; both paths end with `synced`.
 */
import { decode, encodeStoredChanges, storedRecordKey, type Change, type CrdtState, type NumberedChangesMessage, type RecordScan, type RecordValue, type ServerMessage, type StoredRecords, type SyncRecord } from '@outpost/core'
import { FRAME_RECORDS, type OutRecord, type Subscription, type SubscriptionOut } from './subscription'

/** Records then move-outs for one frame. */
interface Part {
  readonly records: readonly OutRecord[]
  readonly moveOut: readonly string[]
}

/** Items `[from, to)` of records followed by move-outs. */
function partOf(records: readonly OutRecord[], moveOut: readonly string[], from: number, to: number): Part {
  const n = records.length
  return { records: records.slice(Math.min(from, n), Math.min(to, n)), moveOut: moveOut.slice(Math.max(0, from - n), Math.max(0, to - n)) }
}

/** Record `i` of a stored page, decoded (the stored bytes were checked when written: no frame limits apply). */
function recordOf(page: StoredRecords, i: number): SyncRecord {
  const [key, seq, state] = decode(page.bytes.subarray(page.offsets[i], page.offsets[i + 1]), UNBOUNDED) as [string, number, CrdtState]
  return { key, seq, state }
}

const UNBOUNDED = { maxFrameBytes: Infinity, maxDepth: Infinity, maxElements: Infinity }

/** Log entries read per page of a replay. */
const REPLAY_PAGE = 2_000
/** Records read per page of a slice. */
const SCAN_PAGE = 2_000
/**
 * Records read for a slice's first page: a small first frame goes out (and the client starts
 * storing) after a short scan instead of a full page's; later pages are full.
 */
const FIRST_SCAN_PAGE = 200
/** A paced stream waits while the socket's send buffer holds more than this. */
const SEND_LOW_WATER = 1024 * 1024
/** How often (ms) a paced stream re-checks a full send buffer. */
const DRAIN_POLL_MS = 5

/** One session's paced streams and their flow control; see the module comment. */
export class PacedStreams {
  readonly #out: SubscriptionOut
  /** Flow control (hello `window`): paced bytes the client may hold unprocessed; undefined = socket pacing only. */
  #window: number | undefined
  /** Paced bytes sent and not yet paid back by `credit`. */
  #owed = 0
  /** Paced streams waiting for credit or for the session to end. */
  #creditWaiters: (() => void)[] = []

  constructor(out: SubscriptionOut) {
    this.#out = out
  }

  /** The client's flow-control window from hello. */
  setWindow(window: number | undefined): void {
    this.#window = window
  }

  /** The client paid back `bytes` of paced frames. */
  credit(bytes: number): void {
    this.#owed = Math.max(0, this.#owed - bytes)
    this.#wake()
  }

  /** Wakes every stream waiting for credit (the session closed: they stop). */
  #wake(): void {
    for (const wake of this.#creditWaiters.splice(0)) wake()
  }

  /** The session closed. */
  close(): void {
    this.#wake()
  }

  /** Streams the whole view from the store, then `synced`. */
  async slice(sub: Subscription, head: number): Promise<void> {
    const store = this.#out.host.context.sync.store
    // Every record a member, as stored: frames are built from the stored bytes (see `sliceStored`).
    if (store.scanStoredRecords !== undefined && sub.view.plain) return this.#sliceStored(sub, head, (scan) => (store.scanStoredRecords as NonNullable<typeof store.scanStoredRecords>)(sub.map, scan))
    let after: string | undefined
    for (;;) {
      const limit = after === undefined ? FIRST_SCAN_PAGE : SCAN_PAGE
      const page = await store.scanRecords(sub.map, after === undefined ? { limit } : { after, limit })
      if (sub.closed) return
      const members: OutRecord[] = []
      for (const record of page) if (sub.view.isMember(record.key, record.state)) members.push({ key: record.key, state: sub.view.project(record.state) })
      await this.#send(sub, members, [])
      if (sub.closed || page.length < limit) break
      after = (page[page.length - 1] as SyncRecord).key
    }
    if (!sub.closed) await this.#out.synced(sub, head)
  }

  /**
   * {@link slice} of a view that holds every record unprojected (`plain`), from a store that
   * gives records in their stored form: each frame is spliced from the stored bytes by
   * `encodeStoredChanges` (no decode, no re-encode, no self-check of bytes the store
   * validated when they were written); a part it declines goes the object way (`#send`).
   */
  async #sliceStored(sub: Subscription, head: number, scan: (scan: RecordScan) => Promise<StoredRecords>): Promise<void> {
    let after: string | undefined
    for (;;) {
      const limit = after === undefined ? FIRST_SCAN_PAGE : SCAN_PAGE
      const page = await scan(after === undefined ? { limit } : { after, limit })
      if (sub.closed) return
      await this.#sendStored(sub, page)
      if (sub.closed || page.count < limit) break
      const last = page.offsets[page.count - 1] as number
      after = storedRecordKey(page.bytes, last) ?? recordOf(page, page.count - 1).key
    }
    if (!sub.closed) await this.#out.synced(sub, head)
  }

  /** Sends a page of stored records as paced, numbered frames, cut as {@link #send} cuts them. */
  async #sendStored(sub: Subscription, page: StoredRecords): Promise<void> {
    const host = this.#out.host
    const limits = this.#out.limits
    const ranges: [number, number][] = []
    for (let i = 0; i < page.count; i += FRAME_RECORDS) ranges.push([i, Math.min(page.count, i + FRAME_RECORDS)])
    let range: [number, number] | undefined
    while ((range = ranges.shift()) !== undefined) {
      const [from, to] = range
      await this.#paced()
      if (sub.closed || !host.isOpen) return
      const message = { type: 'changes', sub: sub.sub, changes: [], paced: true, frame: sub.frames + 1 } as NumberedChangesMessage
      const encoded = encodeStoredChanges(message, page, from, to, sub.view.kind, sub.map, host.version)
      if (encoded !== undefined && encoded.frame.length <= limits.maxFrameBytes && encoded.elements <= limits.maxElements) {
        sub.frames++
        host.context.metrics.opsOut.inc(to - from)
        this.#owed += host.sendEncoded(encoded.frame)
        continue
      }
      if (encoded !== undefined && to - from > 1) {
        const ratio = Math.min(limits.maxFrameBytes / encoded.frame.length, limits.maxElements / encoded.elements)
        const cut = Math.max(1, Math.min((to - from) >> 1, Math.floor((to - from) * ratio * 0.9)))
        ranges.unshift([from, from + cut], [from + cut, to])
        continue
      }
      // Records this packer declines, or one record that fits no frame (which `#send` reports): the object way.
      const records: OutRecord[] = []
      for (let i = from; i < to; i++) records.push(recordOf(page, i))
      await this.#send(sub, records, [])
    }
  }

  /** Replays the keys changed after `cursor` (up to `head`), then `synced`. */
  async replay(sub: Subscription, cursor: number, head: number): Promise<void> {
    const store = this.#out.host.context.sync.store
    let after = cursor
    while (after < head) {
      const entries = (await store.readLog(sub.map, after, REPLAY_PAGE)).filter((entry) => entry.seq <= head)
      if (sub.closed || entries.length === 0) break
      // The first entry of a key in this page holds what the record was before the changes it missed.
      const first = new Map<string, RecordValue | undefined>()
      for (const entry of entries) if (!first.has(entry.key)) first.set(entry.key, entry.before as RecordValue | undefined)
      const keys = [...first.keys()]
      const records = await store.getRecords(sub.map, keys)
      if (sub.closed) return
      const members: OutRecord[] = []
      const moveOut: string[] = []
      keys.forEach((key, i) => {
        const record = records[i]
        if (record !== undefined && sub.view.isMember(key, record.state)) {
          members.push({ key, state: sub.view.project(record.state) })
          return
        }
        // Not a member now: tell the client to drop it when the caller may know of it, now or before this change.
        const before = first.get(key)
        const visibleNow = record !== undefined && sub.view.visibleNonMember(key, record.state, sub.access.visible)
        const visibleBefore = before !== undefined && sub.access.visible(before)
        if (visibleNow || visibleBefore || (sub.access.filter === undefined && record !== undefined)) moveOut.push(key)
      })
      await this.#send(sub, members, moveOut)
      after = (entries[entries.length - 1] as { seq: number }).seq
      if (entries.length < REPLAY_PAGE) break
    }
    if (!sub.closed) await this.#out.synced(sub, head)
  }

  /**
   * Sends records and move-outs as paced, numbered frames (credit and send buffer), each
   * within the frame limits. A part (at most {@link FRAME_RECORDS} items) is encoded first
   * and the frame itself checked against the limits, as the client's decoder will check it:
   * one encoding per frame, no item measured alone (measuring each record cost as much as
   * encoding the frames). A frame over the limits is cut where the bytes and elements say
   * it fits (and the rest tried again); a single record that fits no frame goes through
   * `frames`, which reports it.
   */
  async #send(sub: Subscription, records: readonly OutRecord[], moveOut: readonly string[]): Promise<void> {
    const host = this.#out.host
    const limits = this.#out.limits
    const parts: Part[] = []
    for (let i = 0; i < records.length + moveOut.length; i += FRAME_RECORDS) parts.push(partOf(records, moveOut, i, i + FRAME_RECORDS))
    let part: Part | undefined
    while ((part = parts.shift()) !== undefined) {
      await this.#paced()
      if (sub.closed || !host.isOpen) return
      const changes = part.records.map(({ key, state }) => ({ kind: sub.view.kind, map: sub.map, key, state }) as Change)
      const message: ServerMessage = { type: 'changes', sub: sub.sub, changes, ...(part.moveOut.length > 0 ? { moveOut: [...part.moveOut] } : {}), paced: true, frame: sub.frames + 1 }
      const encoded = host.encode(message)
      if (encoded !== undefined && encoded.frame.length <= limits.maxFrameBytes && encoded.elements <= limits.maxElements) {
        sub.frames++
        host.context.metrics.opsOut.inc(changes.length)
        this.#owed += host.sendEncoded(encoded.frame)
        continue
      }
      const count = part.records.length + part.moveOut.length
      if (encoded !== undefined && count > 1) {
        // Cut where the frame would fit, with a tenth to spare for records larger than the average.
        const ratio = Math.min(limits.maxFrameBytes / encoded.frame.length, limits.maxElements / encoded.elements)
        const cut = Math.max(1, Math.min(count >> 1, Math.floor(count * ratio * 0.9)))
        parts.unshift(partOf(part.records, part.moveOut, 0, cut), partOf(part.records, part.moveOut, cut, count))
        continue
      }
      // One record that fits no frame (or cannot be encoded): `frames` reports it.
      for (const batch of this.#out.frames(sub, part.records, part.moveOut)) {
        await this.#paced()
        if (sub.closed || !host.isOpen) return
        host.context.metrics.opsOut.inc(batch.changes.length)
        this.#owed += host.sendMeasured({ type: 'changes', sub: sub.sub, changes: batch.changes, ...(batch.moveOut.length > 0 ? { moveOut: batch.moveOut } : {}), paced: true, frame: ++sub.frames })
      }
    }
  }

  /** Resolves when a paced frame may go: the send buffer has room and the client has credit (when it asked for flow control). */
  async #paced(): Promise<void> {
    const host = this.#out.host
    while (host.isOpen) {
      if (this.#window !== undefined && this.#owed >= this.#window) {
        await new Promise<void>((resolve) => this.#creditWaiters.push(resolve))
        continue
      }
      if (host.bufferedBytes() <= SEND_LOW_WATER) return
      await new Promise<void>((resolve) => setTimeout(resolve, DRAIN_POLL_MS))
    }
  }
}
