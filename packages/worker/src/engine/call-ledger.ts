/**
 * The call ledger: the ids of recent write calls and their receipts. A caller may tag a
 * write with a call id; a second call with the same id (a retry after the answer was lost,
 * e.g. re-sent to a new leader tab after the old one closed unanswered) gets the first
 * call's receipt and writes nothing, so a counter increment never counts twice. The ids
 * are stored in the transaction of the write itself, so the next engine recognises them too.
 */
import type { Store, StoreEntry } from '@outpost/core'
import type { WriteReceipt } from '../engine-api'

/**
 * Where the ids of recent write calls are kept, in the transaction of the write itself,
 * so a call retried after its answer was lost (a leader tab closed mid-call) is recognised
 * even by the next engine. Entries older than {@link CALL_MEMORY_MS} are pruned at open.
 */
const CALLS_COLLECTION = 'calls'
/** How long a write call id is remembered: far longer than any retry of a lost answer. */
const CALL_MEMORY_MS = 60 * 60_000
/** At most this many call ids are kept in memory. */
const MAX_REMEMBERED_CALLS = 10_000

/** Write call ids seen recently (persisted in {@link CALLS_COLLECTION}), with their receipts. */
export class CallLedger {
  readonly #calls = new Map<string, Promise<WriteReceipt>>()

  /** Loads the recent write call ids, pruning those past {@link CALL_MEMORY_MS}. */
  async load(store: Store, now: number): Promise<void> {
    const horizon = now - CALL_MEMORY_MS
    const stale: { collection: string; key: string }[] = []
    let after: string | undefined
    for (;;) {
      const page = await store.scan(CALLS_COLLECTION, after === undefined ? { limit: 1000 } : { after, limit: 1000 })
      for (const { key, value } of page) {
        const call = value as { opId?: unknown; at?: unknown }
        if (typeof call.opId !== 'number' || typeof call.at !== 'number' || call.at < horizon) stale.push({ collection: CALLS_COLLECTION, key })
        else this.#calls.set(key, Promise.resolve({ opId: call.opId }))
      }
      if (page.length < 1000) break
      after = page[page.length - 1]?.key
    }
    if (stale.length > 0) await store.commit({ deletes: stale })
  }

  /** The receipt of an earlier call with this id, if it is remembered. */
  recall(callId: string): Promise<WriteReceipt> | undefined {
    return this.#calls.get(callId)
  }

  /** Remembers a call's receipt; a call that fails is forgotten, so its retry writes. */
  remember(callId: string, receipt: Promise<WriteReceipt>): void {
    this.#calls.set(callId, receipt)
    receipt.catch(() => this.#calls.delete(callId))
    // Bounded: the oldest ids go first (they are also in the store until pruned at open).
    if (this.#calls.size > MAX_REMEMBERED_CALLS) this.#calls.delete(this.#calls.keys().next().value as string)
  }

  /** The store entry recording call `callId` as write `opId`, committed with the write. */
  entry(callId: string, opId: number, at: number): StoreEntry {
    return { collection: CALLS_COLLECTION, key: callId, value: { opId, at } }
  }
}
