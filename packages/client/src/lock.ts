/**
 * `client.lock(name)`: a lease on a named lock, granted by the relay with a fencing
 * token that strictly increases per lock. The lease ends with `release()`, or is *lost*:
 * its TTL ran out without `extend()`, the relay revoked it, or the connection (or the
 * worker) went away — the holder then cannot know the relay still honours it, so it must
 * stop; the relay keeps the lock until the TTL, so nobody else gets it early either.
 * Guard the resource with the token, not with "I think I still hold it": pass
 * `fencingToken` along and let the resource (or `check(token)`) refuse stale ones.
 */
import { LockError, type OutpostError } from '@outpost/core'
import type { LeaseInfo, LeaseLostReason, LockStatus } from '@outpost/worker'
import type { EngineSession } from './engine/session'
import { reportListenerError } from './engine/transport'

/** Default lease duration (ms). */
export const DEFAULT_LOCK_TTL_MS = 10_000

/** Options of {@link LockHandle.acquire}. */
export interface AcquireOptions {
  /** How long the lease lasts unless extended (ms, 100 to 3 600 000; default 10 s). */
  readonly ttl?: number
  /** How long to wait behind earlier holders (ms, default 0: fail at once if held). */
  readonly wait?: number
}

/** Why a lease was lost. */
export interface LeaseLost {
  readonly reason: LeaseLostReason
}

/** A held lease. */
export interface Lease {
  /** The lock's name. */
  readonly name: string
  /** The fencing token: strictly increases per lock, across relay restarts. */
  readonly fencingToken: number
  /** When the lease ends unless extended (ms since epoch). Updated by `extend`. */
  readonly expiresAt: number
  /** True once released or lost. */
  readonly ended: boolean
  /** Releases the lease (idempotent; after a loss it does nothing). */
  release(): Promise<void>
  /** Extends the lease by `ttl` ms from now (default: the acquire ttl). Rejects with `LockError` once lost. */
  extend(ttl?: number): Promise<void>
  /** Resolves (never rejects) when the lease is lost; stays pending after a release. */
  readonly lost: Promise<LeaseLost>
  /** Calls `listener` when the lease is lost (at once if it already was). Returns the remover. */
  onLost(listener: (lost: LeaseLost) => void): () => void
  /** Aborted when the lease is lost: pass it to work that must stop then (fetch, streams). */
  readonly signal: AbortSignal
}

/** A named lock. */
export interface LockHandle {
  /** The lock's name (the relay's rules match it, e.g. `invoice:*`). */
  readonly name: string
  /**
   * Acquires a lease. Rejects with `OfflineError` at once when the relay is unreachable,
   * `LockError` when not granted within `wait`, `ForbiddenError` when the rules deny it.
   */
  acquire(options?: AcquireOptions): Promise<Lease>
  /** The relay's fencing check: is `token` this lock's current, unexpired lease? */
  check(token: number): Promise<LockStatus>
}

/** Builds a lock handle (see `client.lock`). `leases` collects held leases so `client.close()` releases them. */
export function createLock(session: EngineSession, name: string, leases: Set<Lease>): LockHandle {
  return {
    name,
    async acquire(options = {}) {
      const ttl = options.ttl ?? DEFAULT_LOCK_TTL_MS
      const wait = options.wait ?? 0
      let lease: LeaseImpl | undefined
      let lostEarly: LeaseLostReason | undefined
      const info = await session.callWithin(session.timeoutMs + wait, 'acquireLock', name, ttl, wait, (reason: LeaseLostReason) => {
        if (lease) lease.markLost(reason)
        else lostEarly = reason
      })
      lease = new LeaseImpl(session, info, ttl, leases)
      if (lostEarly !== undefined) lease.markLost(lostEarly)
      return lease
    },
    check: (token) => session.call('checkLock', name, token),
  }
}

class LeaseImpl implements Lease {
  readonly name: string
  readonly fencingToken: number
  readonly lost: Promise<LeaseLost>
  readonly #session: EngineSession
  readonly #id: number
  readonly #ttl: number
  readonly #abort = new AbortController()
  readonly #listeners = new Set<(lost: LeaseLost) => void>()
  readonly #leases: Set<Lease>
  readonly #watch: { close(): void }
  #expiresAt: number
  #lost: LeaseLost | undefined
  #ended = false
  #resolveLost: (lost: LeaseLost) => void = () => {}

  constructor(session: EngineSession, info: LeaseInfo, ttl: number, leases: Set<Lease>) {
    this.#session = session
    this.#id = info.id
    this.name = info.name
    this.fencingToken = info.token
    this.#expiresAt = info.expiresAt
    this.#ttl = ttl
    this.#leases = leases
    this.lost = new Promise((resolve) => (this.#resolveLost = resolve))
    leases.add(this)
    // `start` runs again only when the engine behind the session was replaced: the lease went with it.
    let started = false
    this.#watch = session.track<true>({
      start: async () => {
        if (started) this.markLost('disconnected')
        started = true
        return true
      },
      stop: async () => {},
    })
  }

  get expiresAt(): number {
    return this.#expiresAt
  }

  get ended(): boolean {
    return this.#ended
  }

  get signal(): AbortSignal {
    return this.#abort.signal
  }

  async release(): Promise<void> {
    if (this.#ended) return
    this.#end()
    await this.#session.call('releaseLock', this.#id)
  }

  async extend(ttl = this.#ttl): Promise<void> {
    if (this.#lost) throw new LockError(`the lease on ${this.name} was lost (${this.#lost.reason}); acquire the lock again`, { name: this.name, reason: this.#lost.reason })
    if (this.#ended) throw new LockError(`the lease on ${this.name} was released; acquire the lock again`, { name: this.name })
    const info = await this.#session.call('extendLock', this.#id, ttl)
    this.#expiresAt = info.expiresAt
  }

  onLost(listener: (lost: LeaseLost) => void): () => void {
    if (this.#lost) {
      callSafely(listener, this.#lost)
      return () => {}
    }
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  /** The engine reported the lease lost. @internal */
  markLost(reason: LeaseLostReason): void {
    if (this.#ended) return
    this.#end()
    const lost = { reason }
    this.#lost = lost
    this.#abort.abort(new LockError(`the lease on ${this.name} was lost (${reason})`, { name: this.name, reason }) as OutpostError)
    this.#resolveLost(lost)
    for (const listener of [...this.#listeners]) callSafely(listener, lost)
    this.#listeners.clear()
  }

  #end(): void {
    this.#ended = true
    this.#leases.delete(this)
    this.#watch.close()
  }
}

function callSafely<V>(listener: (value: V) => void, value: V): void {
  try {
    listener(value)
  } catch (error) {
    reportListenerError(error)
  }
}
