/**
 * What every write returns: a thenable that resolves when the write is durable in this
 * browser, plus promises for when it reached the relay and when the relay committed it.
 * Progress is watched lazily (only once someone asks), so 10,000 writes cost 10,000
 * engine calls, not 20,000.
 */
import { deserializeError, type OutpostError } from '@outpost/core'
import type { WriteConcern, WriteReceipt, WriteRejection } from '@outpost/worker'
import type { EngineSession, TrackedHandle } from './engine/session'

/** How far a write has got: `'pending'` until durable locally, then the engine's concern; `'rejected'` when the relay refused it for good. */
export type WriteProgress = 'pending' | WriteConcern | 'rejected'

/** A write in flight. `await handle` waits until it is durable locally. */
export interface WriteHandle extends PromiseLike<void> {
  /** The furthest point the write is known to have reached (kept current once `relayed`, `persisted` or `onProgress` is used). */
  readonly concern: WriteProgress
  /** Resolves when the write is durable locally (same as awaiting the handle). */
  readonly local: Promise<void>
  /** Resolves when the write was sent to the relay. */
  readonly relayed: Promise<void>
  /** Resolves when the relay committed the write. */
  readonly persisted: Promise<void>
  /** Calls `listener` as the write progresses (at once with the current state). Returns a remover. */
  onProgress(listener: (concern: WriteProgress) => void): () => void
  /** Same as `Promise.prototype.catch` on `local`. */
  catch<R = never>(onRejected: (reason: OutpostError) => R | PromiseLike<R>): Promise<void | R>
}

const ORDER: Record<Exclude<WriteProgress, 'rejected'>, number> = { pending: 0, local: 1, relay: 2, persisted: 3 }

/** Builds a handle over a pending engine write. */
export function createWriteHandle(session: EngineSession, receipt: Promise<WriteReceipt>): WriteHandle {
  let concern: Exclude<WriteProgress, 'rejected'> = 'pending'
  let rejected = false
  let watch: TrackedHandle | undefined
  const listeners = new Set<(concern: WriteProgress) => void>()
  const waiters: { readonly at: Exclude<WriteProgress, 'rejected'>; readonly resolve: () => void; readonly reject: (e: unknown) => void }[] = []
  let failure: { readonly error: unknown } | undefined

  const advance = (next: Exclude<WriteProgress, 'rejected'>): void => {
    if (rejected || ORDER[next] <= ORDER[concern]) return
    concern = next
    for (const listener of [...listeners]) listener(next)
    for (let i = waiters.length - 1; i >= 0; i--) {
      const waiter = waiters[i]
      if (waiter && ORDER[waiter.at] <= ORDER[next]) {
        waiters.splice(i, 1)
        waiter.resolve()
      }
    }
    if (next === 'persisted') watch?.close()
  }

  /** The relay refused the write for good: `relayed` and `persisted` reject with its typed error (awaiting the handle still resolves: the write was durable locally until it was taken back). */
  const refuse = (error: OutpostError): void => {
    if (failure) return
    failure = { error }
    rejected = true
    for (const waiter of waiters.splice(0)) waiter.reject(error)
    for (const listener of [...listeners]) listener('rejected')
    watch?.close()
  }

  const local = receipt.then(
    () => advance('local'),
    (error: unknown) => {
      failure = { error }
      for (const waiter of waiters.splice(0)) waiter.reject(error)
      throw error
    },
  )

  const startWatching = (): void => {
    if (watch || failure || concern === 'persisted') return
    watch = session.track<true>({
      start: async (isCurrent) => {
        const { opId } = await receipt
        await session.call('watchWrite', opId, (event: WriteConcern | WriteRejection) => {
          if (!isCurrent()) return
          if (typeof event === 'object') refuse(deserializeError(event.rejected))
          else advance(event)
        })
        return true
      },
      stop: async () => {},
      // Progress is informational; the local write itself already succeeded or failed through `local`.
      onError: () => {},
    })
  }

  const reach = (at: Exclude<WriteProgress, 'rejected'>): Promise<void> => {
    startWatching()
    // A refused write still reached what it reached (e.g. 'relay'); it never reaches the rest.
    if (ORDER[concern] >= ORDER[at]) return Promise.resolve()
    if (failure) return Promise.reject(failure.error)
    return new Promise((resolve, reject) => waiters.push({ at, resolve, reject }))
  }

  let relayed: Promise<void> | undefined
  let persisted: Promise<void> | undefined

  return {
    get concern() {
      startWatching()
      return rejected ? 'rejected' : concern
    },
    local,
    get relayed() {
      return (relayed ??= reach('relay'))
    },
    get persisted() {
      return (persisted ??= reach('persisted'))
    },
    onProgress(listener) {
      startWatching()
      listeners.add(listener)
      listener(rejected ? 'rejected' : concern)
      return () => listeners.delete(listener)
    },
    then(onFulfilled, onRejected) {
      return local.then(onFulfilled, onRejected)
    },
    catch(onRejected) {
      return local.catch(onRejected as (reason: unknown) => never)
    },
  }
}
