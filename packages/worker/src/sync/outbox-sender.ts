/**
 * Sends local writes to the relay in `ops` frames and settles them by `ack`. The outbox
 * goes once per session, right after the subscriptions; new writes go as they commit
 * (once); unacknowledged ops go again on a retry timer. Every session re-sends whatever
 * is unacknowledged to whichever relay welcomed the client: merges are idempotent, so a
 * write the previous relay had already committed is not applied twice (counters merge by
 * per-replica totals). Records the relay asks for during reconciliation (`push`) go out
 * the same way but are not outbox entries: nothing retries them.
 */
import {
  ValueTooLargeError,
  itemBudget,
  measure,
  packBySize,
  serializeError,
  sizeError,
  type Change,
  type ClientMessage,
  type FrameSize,
  type SerializedError,
  type WireLimits,
} from '@outpost/core'
import type { Outbox, OutboxEntry } from '../outbox'
import { isPermanentRejection } from '../outbox'

/** Most changes per `ops` frame; frames are cut by bytes first (see `packBySize`). */
const OPS_PER_FRAME = 500
/** Default retry interval for sent, unacknowledged ops. */
const DEFAULT_RETRY_MS = 10_000

/** What the sender needs from the engine. */
export interface OutboxHost {
  pendingOps(): Outbox
  acked(ok: readonly number[], rejected: readonly (readonly [number, SerializedError])[]): Promise<void>
  sent(opIds: readonly number[]): void
  connectionChanged(error?: SerializedError): void
}

/** What the sender needs from the connection. */
export interface OutboxLink {
  /** True when a welcomed session is up (`syncing` or `live`). */
  readonly active: boolean
  /** True while a socket exists (open or opening). */
  readonly hasSocket: boolean
  readonly limits: WireLimits
  send(message: ClientMessage): void
  /** The next id of the sequence shared with coordination requests. */
  nextId(): number
  now(): number
}

/** Sends the outbox; see the module comment. */
export class OutboxSender {
  readonly #host: OutboxHost
  readonly #link: OutboxLink
  readonly #retryMs: number
  /** ops request id → the opIds it carried (push replies carry none). */
  readonly #requests = new Map<number, number[]>()
  #sendScheduled = false
  #retryTimer: ReturnType<typeof setInterval> | undefined
  /** Changes sent in `ops` frames (for tests and benchmarks). @internal */
  changesSent = 0

  constructor(host: OutboxHost, link: OutboxLink, retryMs: number | undefined) {
    this.#host = host
    this.#link = link
    this.#retryMs = retryMs ?? DEFAULT_RETRY_MS
  }

  /** A session is up: everything unacknowledged goes now, and again on the retry timer until acknowledged. */
  sessionUp(): void {
    const outbox = this.#host.pendingOps()
    outbox.resetConnection()
    this.#send(outbox.takeUnsent(this.#link.now()))
    this.#retryTimer = setInterval(() => this.#send(this.#host.pendingOps().takeDue(this.#link.now(), this.#retryMs)), Math.max(10, Math.floor(this.#retryMs / 2)))
  }

  /** The session ended: nothing in flight will be answered; the next session re-sends it. */
  sessionEnded(): void {
    if (this.#retryTimer !== undefined) clearInterval(this.#retryTimer)
    this.#retryTimer = undefined
    this.#requests.clear()
    this.#host.pendingOps().resetConnection()
  }

  /** A local write committed: send what this session has not sent yet (once). */
  changed(): void {
    if (!this.#link.active || this.#sendScheduled) return
    this.#sendScheduled = true
    queueMicrotask(() => {
      this.#sendScheduled = false
      this.#send(this.#host.pendingOps().takeUnsent(this.#link.now()))
    })
  }

  /** Sends records the relay asked for (`push`), cut into `ops` frames; their acks settle nothing. */
  sendRecords(records: readonly Change[]): void {
    for (const batch of packBySize(records, measure, itemBudget(this.#link.limits), OPS_PER_FRAME)) {
      const id = this.#link.nextId()
      this.#requests.set(id, [])
      this.#link.send({ type: 'ops', id, changes: batch })
      this.changesSent += batch.length
    }
  }

  /** An `ack`: committed ops leave the outbox, permanent refusals go to the rejection log, others wait for a retry. */
  async ack(id: number, results: readonly (SerializedError | null)[]): Promise<void> {
    const opIds = this.#requests.get(id)
    if (opIds === undefined) return
    this.#requests.delete(id)
    const ok: number[] = []
    const rejected: [number, SerializedError][] = []
    opIds.forEach((opId, i) => {
      const result = results[i]
      if (result === null) ok.push(opId)
      else if (result !== undefined && isPermanentRejection(result)) rejected.push([opId, result])
      // Anything else (rate limit, store failure, missing result) waits for the retry timer.
    })
    if (ok.length > 0 || rejected.length > 0) await this.#host.acked(ok, rejected)
  }

  /** An `error` naming an `ops` request: a permanent refusal rejects all its ops; anything else waits for a retry. */
  async refused(ref: number, error: SerializedError): Promise<void> {
    const opIds = this.#requests.get(ref)
    if (opIds === undefined || !isPermanentRejection(error)) return
    this.#requests.delete(ref)
    await this.#host.acked([], opIds.map((opId) => [opId, error] as const))
  }

  /**
   * Sends outbox entries in `ops` frames cut by bytes. An entry that cannot fit a frame on
   * its own (written under larger limits, or before limits were checked) is rejected here
   * with VALUE_TOO_LARGE like a relay refusal, so it never blocks the entries behind it.
   */
  #send(entries: readonly OutboxEntry[]): void {
    if (entries.length === 0 || !this.#link.hasSocket) return
    const limits = this.#link.limits
    const oversize: [number, SerializedError][] = []
    const batches = packBySize(entries, (e) => measureEntry(e), itemBudget(limits), OPS_PER_FRAME, (e, size) => {
      const error = sizeError(size, limits, `the pending write ${e.change.map}/${e.change.key.slice(0, 64)}`)
      oversize.push([e.opId, serializeError(error ?? new ValueTooLargeError('this write is too large to send'))])
    })
    for (const chunk of batches) {
      const id = this.#link.nextId()
      this.#requests.set(
        id,
        chunk.map((e) => e.opId),
      )
      this.#link.send({ type: 'ops', id, changes: chunk.map((e) => e.change) })
      this.changesSent += chunk.length
      this.#host.sent(chunk.map((e) => e.opId))
    }
    if (oversize.length > 0) void this.#host.acked([], oversize).catch((error: unknown) => this.#host.connectionChanged(serializeError(error)))
  }
}

/** Exact sizes of outbox changes, measured once per entry (an entry is immutable; retries re-send it). */
const entrySizes = new WeakMap<OutboxEntry, FrameSize>()

function measureEntry(entry: OutboxEntry): FrameSize {
  let size = entrySizes.get(entry)
  if (size === undefined) {
    size = measure(entry.change)
    entrySizes.set(entry, size)
  }
  return size
}
