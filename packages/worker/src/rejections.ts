/**
 * Writes the relay refused for good (FORBIDDEN, INVALID_VALUE, VALUE_TOO_LARGE, ...): a
 * bounded log the status reports, persisted in store metadata so it survives restarts.
 *
 * A refused write leaves the outbox at once (it never blocks the writes behind it), its
 * handle's `persisted` rejects with the typed error, and the engine takes its registers
 * back out of the local record (see `withoutWrite` in core), so no state only this device
 * believes outlives the refusal.
 */
import type { SerializedError, Value } from '@outpost/core'
import type { OutboxEntry } from './outbox'

/** The metadata key of the persisted log. */
export const REJECTED_META_KEY = 'rejected'

/** Refused writes kept (newest first) for status and for `watchWrite` calls that come late. */
const KEEP = 50
/** Refused keys the status lists. */
const STATUS_KEYS = 20

/** One refused write. */
export interface RejectedWrite {
  readonly opId: number
  readonly map: string
  readonly key: string
  readonly error: SerializedError
  /** When the refusal arrived (ms, local clock). */
  readonly at: number
}

/** What `status.rejected` reports. */
export interface RejectedStatus {
  /** Writes refused for good since this database was created. */
  readonly count: number
  /** The newest refusal's error, or null. */
  readonly lastError: SerializedError | null
  /** The newest refused writes' map and key (at most 20), newest first. */
  readonly keys: readonly { readonly map: string; readonly key: string }[]
}

/** The log; see the module comment. */
export class RejectionLog {
  #count = 0
  #recent: RejectedWrite[] = []
  /** opIds refused during this engine's life (bounded like `#recent` plus this run's). */
  readonly #ops = new Map<number, SerializedError>()

  /** Restores the log from its stored metadata value (anything malformed is ignored). */
  load(value: Value | undefined): void {
    const stored = value as { count?: unknown; recent?: unknown } | undefined
    if (typeof stored !== 'object' || stored === null) return
    if (typeof stored.count === 'number') this.#count = stored.count
    if (Array.isArray(stored.recent)) {
      this.#recent = (stored.recent as RejectedWrite[]).filter((r) => typeof r?.opId === 'number' && typeof r.map === 'string' && typeof r.key === 'string').slice(0, KEEP)
      for (const r of this.#recent) this.#ops.set(r.opId, r.error)
    }
  }

  /** Records a refusal of `entry`. */
  record(entry: OutboxEntry, error: SerializedError, at: number): void {
    this.#count++
    this.#recent.unshift({ opId: entry.opId, map: entry.change.map, key: entry.change.key, error, at })
    if (this.#recent.length > KEEP) this.#recent.length = KEEP
    this.#ops.set(entry.opId, error)
    if (this.#ops.size > 10_000) this.#ops.delete(this.#ops.keys().next().value as number)
  }

  /** The error that refused `opId`, if it was refused (and is still remembered). */
  errorOf(opId: number): SerializedError | undefined {
    return this.#ops.get(opId)
  }

  /** The status view. */
  status(): RejectedStatus {
    return {
      count: this.#count,
      lastError: this.#recent[0]?.error ?? null,
      keys: this.#recent.slice(0, STATUS_KEYS).map(({ map, key }) => ({ map, key })),
    }
  }

  /** The newest refused writes, newest first (a copy, for the inspector). */
  recent(): RejectedWrite[] {
    return [...this.#recent]
  }

  /** The value stored under {@link REJECTED_META_KEY}. */
  toValue(): Value {
    return { count: this.#count, recent: this.#recent.map((r) => ({ ...r, error: { ...r.error } })) } as unknown as Value
  }
}
