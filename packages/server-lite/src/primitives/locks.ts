/**
 * Locks with leases and fencing tokens.
 *
 * ```
 *          acquire (free)                     release / expiry / requester gone
 *   free ─────────────────▶ granting ──commit──▶ held ───────────────────────────▶ free
 *    ▲  acquire (busy) → FIFO queue;   │ (token durable before lock-granted)      │
 *    │  a waiter past `wait` ms → LOCK_FAILED                                     │
 *    └──────────── next waiter (FIFO) ◀────────────────────────────────────────────┘
 * ```
 *
 * Fencing: every grant takes the next token of its lock (`current + 1`) and commits it to
 * the store (`lock-token:<name>`) before anyone hears of it, so tokens strictly increase
 * per lock across relay restarts. A protected resource keeps the highest token it has
 * seen and refuses lower ones (see `FencedResource`), which keeps it safe even when a
 * holder pauses past its lease and acts on it after someone else got the lock.
 *
 * Leases: a lease ends at `expiresAt` unless extended (`lock-extend` with the current
 * token) or released. The lease itself is also persisted (`lock-lease:<name>`), so a relay
 * that restarts keeps a held lock held until its TTL instead of handing it out at once.
 * A holder that disconnects keeps its lease until the TTL (it may be reconnecting); its
 * waiting requests are dropped. A token is a capability of the user that got it: extend and
 * release must come from a session of the same subject (tokens are sequential, so anyone
 * could guess one).
 */
import { ForbiddenError, LockError, RateLimitError, serializeError, type Store, type StoreBatch, type Value } from '@outpost/core'
import type { Logger } from 'pino'
import type { Principal } from '../auth/jwt'
import type { RuleSet } from '../auth/rules'
import type { RelayMetrics } from '../metrics'
import type { Caller } from './caller'

/** Idle locks (free, nobody waiting) kept in memory beyond this are forgotten (reloaded on use). */
const MAX_IDLE_LOCKS = 10_000
/** setTimeout's largest delay. */
const MAX_TIMER_MS = 2 ** 31 - 1

/** The store metadata key of a lock's highest token. */
export function lockTokenKey(name: string): string {
  return `lock-token:${name}`
}

/** The store metadata key of a lock's current lease. */
export function lockLeaseKey(name: string): string {
  return `lock-lease:${name}`
}

/** A lock as `GET /locks/<name>` reports it. */
export interface LockInfo {
  readonly name: string
  /** The highest token ever issued for this lock (0 before the first grant). */
  readonly current: number
  /** True while a lease is held. */
  readonly holder: boolean
  /** When the current lease ends (ms, relay clock), or null when free. */
  readonly expiresAt: number | null
}

interface Lease {
  readonly token: number
  expiresAt: number
  readonly subject: string
  /** The session to tell when the lease is lost; undefined after it disconnected (or after a restart). */
  holder: Caller | undefined
  timer: ReturnType<typeof setTimeout> | undefined
}

interface Waiter {
  readonly caller: Caller
  readonly id: number
  readonly ttl: number
  /** When it asked (ms), for the wait histogram. */
  readonly since: number
  timer: ReturnType<typeof setTimeout> | undefined
}

interface LockState {
  readonly name: string
  /** Highest token issued. */
  current: number
  lease: Lease | undefined
  /** A grant's token is being committed: nobody else may be granted meanwhile. */
  granting: boolean
  readonly waiters: Waiter[]
}

/** What a {@link LockService} needs from its relay. */
export interface LockServiceOptions {
  /** Reads persisted tokens and leases. */
  readonly store: Pick<Store, 'getMeta'>
  /** Commits metadata durably (the relay's group commit). */
  readonly commit: (batch: StoreBatch) => Promise<unknown>
  readonly rules: RuleSet
  readonly metrics: RelayMetrics
  readonly logger: Logger
  readonly now: () => number
  /** Lock requests one session may have waiting. */
  readonly maxWaitsPerSession: number
}

/** The relay's locks; see the module comment. */
export class LockService {
  readonly #options: LockServiceOptions
  readonly #locks = new Map<string, LockState>()
  readonly #loading = new Map<string, Promise<LockState>>()
  readonly #waits = new Map<Caller, number>()
  #closed = false

  constructor(options: LockServiceOptions) {
    this.#options = options
  }

  /** Handles `lock-acquire`: granted now or in FIFO order, or LOCK_FAILED after `wait` ms. */
  async acquire(caller: Caller, message: { id: number; name: string; ttl: number; wait: number }): Promise<void> {
    if (!this.#allowed(caller, message.name, message.id)) return
    const waiting = this.#waits.get(caller) ?? 0
    if (waiting >= this.#options.maxWaitsPerSession) {
      this.#fail(caller, message.id, new RateLimitError(`At most ${this.#options.maxWaitsPerSession} lock requests may wait per connection`))
      return
    }
    const state = await this.#state(message.name)
    if (!caller.isOpen || this.#closed) return
    const waiter: Waiter = { caller, id: message.id, ttl: message.ttl, since: this.#options.now(), timer: undefined }
    state.waiters.push(waiter)
    this.#waits.set(caller, waiting + 1)
    this.#pump(state)
    if (!state.waiters.includes(waiter)) return
    const timeout = (): void => {
      const at = state.waiters.indexOf(waiter)
      if (at === -1) return
      state.waiters.splice(at, 1)
      this.#doneWaiting(caller)
      this.#fail(caller, message.id, new LockError(`Lock ${message.name.slice(0, 64)} was not acquired within ${message.wait} ms; it is held by someone else. Retry later or wait longer`, { name: message.name.slice(0, 256), wait: message.wait }))
      this.#maybeForget(state)
    }
    if (message.wait === 0) timeout()
    else {
      waiter.timer = setTimeout(timeout, Math.min(message.wait, MAX_TIMER_MS))
      waiter.timer.unref?.()
    }
  }

  /** Handles `lock-extend`: a new `expiresAt` for the current lease, or LOCK_FAILED for a stale token. */
  async extend(caller: Caller, message: { id: number; name: string; token: number; ttl: number }): Promise<void> {
    if (!this.#allowed(caller, message.name, message.id)) return
    const state = await this.#state(message.name)
    if (!caller.isOpen || this.#closed) return
    const lease = this.#ownLease(caller, state, message.token, message.id)
    if (lease === undefined) return
    lease.expiresAt = this.#options.now() + message.ttl
    lease.holder = caller
    this.#arm(state, lease)
    const expiresAt = lease.expiresAt
    try {
      await this.#options.commit({ meta: [{ key: lockLeaseKey(state.name), value: leaseRecord(lease) }] })
    } catch (error) {
      this.#options.logger.error({ err: error, lock: state.name }, 'cannot persist a lock extension')
      this.#fail(caller, message.id, new LockError(`Lock ${state.name.slice(0, 64)} could not be extended durably; retry`, { name: state.name.slice(0, 256) }))
      return
    }
    caller.send({ type: 'lock-granted', id: message.id, name: state.name, token: lease.token, expiresAt })
  }

  /** Handles `lock-release`: frees the lease and grants the next waiter. */
  async release(caller: Caller, message: { id: number; name: string; token: number }): Promise<void> {
    if (!this.#allowed(caller, message.name, message.id)) return
    const state = await this.#state(message.name)
    if (!caller.isOpen || this.#closed) return
    const lease = this.#ownLease(caller, state, message.token, message.id)
    if (lease === undefined) return
    this.#end(state, lease)
    caller.send({ type: 'lock-released', id: message.id, name: state.name })
    this.#pump(state)
  }

  /** Handles `lock-check`, the fencing check: is `token` the current unexpired lease? */
  async check(caller: Caller, message: { id: number; name: string; token: number }): Promise<void> {
    if (!this.#allowed(caller, message.name, message.id)) return
    const { valid, current } = await this.verify(message.name, message.token)
    caller.send({ type: 'lock-status', id: message.id, name: message.name, valid, current })
  }

  /** The fencing check without a session (HTTP). Check access with {@link mayUse} first. */
  async verify(name: string, token: number): Promise<{ valid: boolean; current: number }> {
    const state = await this.#state(name)
    const lease = state.lease
    const valid = lease !== undefined && lease.token === token && lease.expiresAt > this.#options.now()
    const current = state.current
    this.#maybeForget(state)
    return { valid, current }
  }

  /** The lock's public state (HTTP `GET /locks/<name>`). */
  async info(name: string): Promise<LockInfo> {
    const state = await this.#state(name)
    const lease = state.lease
    const held = lease !== undefined && lease.expiresAt > this.#options.now()
    const info = { name, current: state.current, holder: held, expiresAt: held ? lease.expiresAt : null }
    this.#maybeForget(state)
    return info
  }

  /** Whether `principal` may use lock `name` under the rules. */
  mayUse(name: string, principal: Principal): boolean {
    return this.#options.rules.lockAccess(name, principal)
  }

  /** A session ended: its waiting requests are dropped; leases it holds run to their TTL. */
  sessionClosed(caller: Caller): void {
    this.#waits.delete(caller)
    for (const state of [...this.#locks.values()]) {
      if (state.lease?.holder === caller) state.lease.holder = undefined
      if (!state.waiters.some((w) => w.caller === caller)) continue
      for (let i = state.waiters.length - 1; i >= 0; i--) {
        const waiter = state.waiters[i] as Waiter
        if (waiter.caller !== caller) continue
        if (waiter.timer !== undefined) clearTimeout(waiter.timer)
        state.waiters.splice(i, 1)
      }
      this.#maybeForget(state)
    }
  }

  /** Stops every timer (relay shutdown). Leases stay persisted and hold after a restart. */
  close(): void {
    this.#closed = true
    for (const state of this.#locks.values()) {
      if (state.lease?.timer !== undefined) clearTimeout(state.lease.timer)
      for (const waiter of state.waiters) if (waiter.timer !== undefined) clearTimeout(waiter.timer)
    }
  }

  #allowed(caller: Caller, name: string, id: number): boolean {
    if (this.mayUse(name, caller.principal)) return true
    this.#fail(caller, id, new ForbiddenError(`You may not use lock ${name.slice(0, 64)}`, { name: name.slice(0, 256) }))
    return false
  }

  #fail(caller: Caller, ref: number, error: Error): void {
    caller.send({ type: 'error', ref, error: serializeError(error) })
  }

  #doneWaiting(caller: Caller): void {
    const left = (this.#waits.get(caller) ?? 1) - 1
    if (left <= 0) this.#waits.delete(caller)
    else this.#waits.set(caller, left)
  }

  /** The lease `token` names when it is current and the caller's user owns it; otherwise answers LOCK_FAILED. */
  #ownLease(caller: Caller, state: LockState, token: number, ref: number): Lease | undefined {
    const lease = state.lease
    if (lease !== undefined && lease.token === token && lease.expiresAt > this.#options.now() && lease.subject === caller.principal.subject) return lease
    this.#fail(
      caller,
      ref,
      new LockError(`Token ${token} is not the current lease of lock ${state.name.slice(0, 64)} (the newest token is ${state.current}); it expired, was released or belongs to someone else. Acquire the lock again`, {
        name: state.name.slice(0, 256),
        token,
        current: state.current,
      }),
    )
    return undefined
  }

  /**
   * The lock's state, loaded once from the store. The returned state is the one in the
   * table at the moment this resolves; callers use it synchronously, so an idle state that
   * is forgotten and reloaded is never used twice.
   */
  async #state(name: string): Promise<LockState> {
    for (;;) {
      const cached = this.#locks.get(name)
      if (cached !== undefined) return cached
      let loading = this.#loading.get(name)
      if (loading === undefined) {
        loading = this.#read(name).finally(() => this.#loading.delete(name))
        this.#loading.set(name, loading)
      }
      const state = await loading
      if (this.#locks.get(name) === state) return state
    }
  }

  async #read(name: string): Promise<LockState> {
    const [token, lease] = await Promise.all([this.#options.store.getMeta(lockTokenKey(name)), this.#options.store.getMeta(lockLeaseKey(name))])
    const state: LockState = { name, current: typeof token === 'number' ? token : 0, lease: undefined, granting: false, waiters: [] }
    const persisted = parseLease(lease)
    if (persisted !== undefined && persisted.token === state.current && persisted.expiresAt > this.#options.now()) {
      // Held before a restart: the holder keeps it until its TTL (it will reconnect, or the lease runs out).
      state.lease = { ...persisted, holder: undefined, timer: undefined }
      this.#arm(state, state.lease)
    }
    this.#locks.set(name, state)
    return state
  }

  /** Grants the lock to the first live waiter when it is free. */
  #pump(state: LockState): void {
    if (this.#closed || state.lease !== undefined || state.granting) return
    let waiter: Waiter | undefined
    while ((waiter = state.waiters.shift()) !== undefined) {
      if (waiter.timer !== undefined) clearTimeout(waiter.timer)
      if (waiter.caller.isOpen) break
      this.#doneWaiting(waiter.caller)
    }
    if (waiter === undefined) {
      this.#maybeForget(state)
      return
    }
    this.#grant(state, waiter)
  }

  #grant(state: LockState, waiter: Waiter): void {
    const { caller, id, ttl } = waiter
    state.granting = true
    const token = state.current + 1
    state.current = token
    // Computed before the commit and persisted as is: the lease can only be shorter than promised, never longer.
    const expiresAt = this.#options.now() + ttl
    const record = { token, expiresAt, subject: caller.principal.subject }
    this.#options
      .commit({ meta: [{ key: lockTokenKey(state.name), value: token }, { key: lockLeaseKey(state.name), value: record }] })
      .then(
        () => {
          state.granting = false
          this.#doneWaiting(caller)
          if (this.#closed) return
          const lease: Lease = { ...record, holder: caller, timer: undefined }
          state.lease = lease
          if (!caller.isOpen) {
            // The requester left while its token was committed: nobody holds it, so free it now.
            this.#end(state, lease)
            this.#pump(state)
            return
          }
          this.#arm(state, lease)
          this.#options.metrics.lockGrants.inc()
          this.#options.metrics.lockWaitSeconds.observe(Math.max(0, this.#options.now() - waiter.since) / 1000)
          caller.send({ type: 'lock-granted', id, name: state.name, token, expiresAt })
        },
        (error: unknown) => {
          state.granting = false
          this.#doneWaiting(caller)
          this.#options.logger.error({ err: error, lock: state.name }, 'cannot persist a lock token')
          this.#fail(caller, id, new LockError(`Lock ${state.name.slice(0, 64)} could not be granted: its fencing token could not be stored. Retry later`, { name: state.name.slice(0, 256) }))
          this.#pump(state)
        },
      )
  }

  #arm(state: LockState, lease: Lease): void {
    if (lease.timer !== undefined) clearTimeout(lease.timer)
    const delay = Math.min(Math.max(lease.expiresAt - this.#options.now(), 0), MAX_TIMER_MS)
    lease.timer = setTimeout(() => this.#expire(state, lease), delay)
    lease.timer.unref?.()
  }

  #expire(state: LockState, lease: Lease): void {
    if (state.lease !== lease || this.#closed) return
    if (this.#options.now() < lease.expiresAt) {
      this.#arm(state, lease)
      return
    }
    const holder = lease.holder
    this.#end(state, lease)
    if (holder?.isOpen === true) holder.send({ type: 'lock-lost', name: state.name, token: lease.token, reason: 'expired' })
    this.#pump(state)
  }

  /** Ends a lease in memory and (without waiting) in the store. */
  #end(state: LockState, lease: Lease): void {
    if (lease.timer !== undefined) clearTimeout(lease.timer)
    lease.timer = undefined
    if (state.lease === lease) state.lease = undefined
    // Not awaited: a lost delete only keeps the lock held until its TTL after a crash, which is safe.
    this.#options.commit({ meta: [{ key: lockLeaseKey(state.name), value: null }] }).catch((error: unknown) => {
      this.#options.logger.warn({ err: error, lock: state.name }, 'cannot clear a persisted lease; it will run to its TTL after a restart')
    })
  }

  #maybeForget(state: LockState): void {
    if (this.#locks.size <= MAX_IDLE_LOCKS) return
    if (state.lease === undefined && !state.granting && state.waiters.length === 0 && this.#locks.get(state.name) === state) this.#locks.delete(state.name)
  }
}

function leaseRecord(lease: Lease): Value {
  return { token: lease.token, expiresAt: lease.expiresAt, subject: lease.subject }
}

function parseLease(value: Value | undefined): { token: number; expiresAt: number; subject: string } | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Date || value instanceof Uint8Array) return undefined
  const record = value as { readonly [field: string]: Value }
  const { token, expiresAt, subject } = record
  if (typeof token !== 'number' || typeof expiresAt !== 'number' || typeof subject !== 'string') return undefined
  return { token, expiresAt, subject }
}
