/**
 * The outbox: local writes the relay has not acknowledged yet. Entries are persisted by
 * the engine in the same store transaction as the record they change (collection
 * {@link OUTBOX_COLLECTION}); this class is their in-memory mirror plus the per-connection
 * bookkeeping of what was sent when.
 *
 * Rules it enforces:
 * - an entry is dropped only when the relay acked *its* opId (one tab's ack never drops
 *   another tab's unsent write);
 * - pending entries go once per connection ({@link takeUnsent}) and are retried by a timer
 *   ({@link takeDue}), never re-sent because another write happened;
 * - an entry the relay rejected permanently leaves the outbox at once (the engine records
 *   it in its rejection log), so it never blocks the entries behind it.
 */
import type { Change, SerializedError } from '@outpost/core'

/** The store collection holding outbox entries (key: zero-padded opId). */
export const OUTBOX_COLLECTION = 'outbox'

/** One unacknowledged local write. */
export interface OutboxEntry {
  readonly opId: number
  /** The state-based change (a delta): replaying it is idempotent. */
  readonly change: Change
  /** When it was written (ms, local clock). */
  readonly at: number
  /**
   * The clock offset (ms, relay minus local) its stamps were made under; the engine
   * re-stamps the entry when the relay measures a different one (a skewed clock).
   */
  readonly offset?: number
  /** Only in databases of older versions: an entry kept after a permanent rejection (the engine moves it to the rejection log at open). */
  readonly error?: SerializedError
}

/** Store key of an opId: zero-padded so key order is opId order. */
export function outboxKey(opId: number): string {
  return String(opId).padStart(15, '0')
}

/** Error codes the relay will answer the same way however often the write is retried. */
const PERMANENT: ReadonlySet<string> = new Set([
  'FORBIDDEN',
  'INVALID_VALUE',
  'VALUE_TOO_LARGE',
  'INVALID_KEY',
  'INVALID_PREDICATE',
  'INVALID_QUERY',
  'INVALID_MESSAGE',
  'SCHEMA_VALIDATION',
  'NOT_FOUND',
])

/** True when a rejection with this code must not be retried. */
export function isPermanentRejection(error: SerializedError): boolean {
  return PERMANENT.has(error.code)
}

/** In-memory mirror of the persisted outbox, with send bookkeeping for the current connection. */
export class Outbox {
  readonly #entries = new Map<number, OutboxEntry>()
  /** opId → when it was last sent on the current connection. */
  readonly #sentAt = new Map<number, number>()

  /** Adds (or replaces) entries, e.g. on load or after a local write committed. */
  add(entry: OutboxEntry): void {
    this.#entries.set(entry.opId, entry)
  }

  /** The entry for `opId`, if still pending. */
  get(opId: number): OutboxEntry | undefined {
    return this.#entries.get(opId)
  }

  /** Removes acknowledged entries. */
  remove(opId: number): void {
    this.#entries.delete(opId)
    this.#sentAt.delete(opId)
  }

  /** Pending entries, oldest first. */
  pending(): OutboxEntry[] {
    return [...this.#entries.values()].sort((a, b) => a.opId - b.opId)
  }

  /** The `limit` oldest pending entries, oldest first, without sorting the whole outbox (for the inspector). */
  oldest(limit: number): OutboxEntry[] {
    const out: OutboxEntry[] = []
    for (const entry of this.#entries.values()) {
      if (out.length === limit && entry.opId > (out[limit - 1] as OutboxEntry).opId) continue
      let at = out.length
      while (at > 0 && (out[at - 1] as OutboxEntry).opId > entry.opId) at--
      out.splice(at, 0, entry)
      if (out.length > limit) out.pop()
    }
    return out
  }

  /** Pending entries for one key, oldest first. */
  pendingFor(kind: string, map: string, key: string): OutboxEntry[] {
    return this.pending().filter((e) => e.change.kind === kind && e.change.map === map && e.change.key === key)
  }

  /** Number of entries still waiting for the relay. */
  get pendingCount(): number {
    return this.#entries.size
  }

  /** Age (ms) of the oldest pending entry, or null. */
  oldestPendingMs(now: number): number | null {
    let oldest: number | null = null
    for (const e of this.#entries.values()) if (oldest === null || e.at < oldest) oldest = e.at
    return oldest === null ? null : Math.max(0, now - oldest)
  }

  /** A new connection: nothing has been sent on it yet. */
  resetConnection(): void {
    this.#sentAt.clear()
  }

  /** True when `opId` was sent on the current connection. */
  wasSent(opId: number): boolean {
    return this.#sentAt.has(opId)
  }

  /** Pending entries not yet sent on this connection; marks them sent at `now`. */
  takeUnsent(now: number): OutboxEntry[] {
    const out = this.pending().filter((e) => !this.#sentAt.has(e.opId))
    for (const e of out) this.#sentAt.set(e.opId, now)
    return out
  }

  /** Pending entries sent at least `retryMs` ago and still unacknowledged; marks them sent again. */
  takeDue(now: number, retryMs: number): OutboxEntry[] {
    const out = this.pending().filter((e) => {
      const at = this.#sentAt.get(e.opId)
      return at !== undefined && now - at >= retryMs
    })
    for (const e of out) this.#sentAt.set(e.opId, now)
    return out
  }
}
