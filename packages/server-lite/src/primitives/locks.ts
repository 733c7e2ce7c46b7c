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
 * Who decides a grant is a {@link LockBackend}: one relay keeps tokens and leases in its
 * store's metadata (`KvLockBackend`); relays sharing a Postgres decide in Postgres, one row
 * per lock, leases timed by Postgres's clock (`PostgresLockBackend`, `store/postgres-locks.ts`). Either
 * way a token is committed before anyone hears of it and strictly increases per lock, so a
 * protected resource that keeps the highest token it has seen (see `FencedResource`) stays
 * safe even when a holder pauses past its lease and acts after someone else got the lock.
 *
 * This service keeps, per lock, the waiters of this relay's sessions (FIFO), a timer per
 * lease it granted (to tell the holder `lock-lost`), and retries waiters when the lease
 * they wait for ends here, when the bus says it ended elsewhere (`released`), or at its
 * expiry. A holder that disconnects keeps its lease until the TTL (it may be reconnecting);
 * its waiting requests are dropped. Extend and release must come from the same subject.
 */
import { ForbiddenError, LockError, RateLimitError, serializeError } from '@outpost/core'
import type { Logger } from 'pino'
import type { Principal } from '../auth/jwt'
import type { RuleSet } from '../auth/rules'
import type { RelayMetrics } from '../metrics'
import type { Caller } from './caller'
import type { GrantAttempt, LockBackend, StoredLease } from './lock-backend'

/** setTimeout's largest delay. */
const MAX_TIMER_MS = 2 ** 31 - 1

/** A lock as `GET /locks/<name>` reports it. */
export interface LockInfo {
  readonly name: string
  /** The highest token ever issued for this lock (0 before the first grant). */
  readonly current: number
  /** True while a lease is held. */
  readonly holder: boolean
  /** When the current lease ends (ms, the deciding clock), or null when free. */
  readonly expiresAt: number | null
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
  readonly waiters: Waiter[]
  /** A grant attempt for the first waiter is running. */
  attempting: boolean
  /** Retry when the lease we saw ends. */
  retry: ReturnType<typeof setTimeout> | undefined
  /** The lease this relay granted, with its holder (to tell it of expiry). */
  granted: { lease: StoredLease; holder: Caller | undefined; timer: ReturnType<typeof setTimeout> | undefined } | undefined
}

/** What a {@link LockService} needs from its relay. */
export interface LockServiceOptions {
  readonly backend: LockBackend
  readonly rules: RuleSet
  readonly metrics: RelayMetrics
  readonly logger: Logger
  readonly now: () => number
  /** Lock requests one session may have waiting. */
  readonly maxWaitsPerSession: number
  /** Tells other relays a lease here ended, so their waiters try at once (the bus); optional. */
  readonly announceRelease?: (name: string) => void
  /**
   * The longest a waiter waits before trying again while the lock is busy (ms). A backend
   * shared by relays sets it: a release elsewhere whose announcement was lost then costs at
   * most this long. Default: until the lease's expiry.
   */
  readonly retryMs?: number
}

/** The relay's locks; see the module comment. */
export class LockService {
  readonly #options: LockServiceOptions
  readonly #locks = new Map<string, LockState>()
  readonly #waits = new Map<Caller, number>()
  #closed = false

  constructor(options: LockServiceOptions) {
    this.#options = options
  }

  #state(name: string): LockState {
    let state = this.#locks.get(name)
    if (state === undefined) {
      state = { name, waiters: [], attempting: false, retry: undefined, granted: undefined }
      this.#locks.set(name, state)
    }
    return state
  }

  #forget(state: LockState): void {
    if (state.waiters.length === 0 && !state.attempting && state.granted === undefined && this.#locks.get(state.name) === state) {
      if (state.retry !== undefined) clearTimeout(state.retry)
      this.#locks.delete(state.name)
    }
  }

  /** Handles `lock-acquire`: granted now or in FIFO order, or LOCK_FAILED after `wait` ms. */
  async acquire(caller: Caller, message: { id: number; name: string; ttl: number; wait: number }): Promise<void> {
    if (!this.#allowed(caller, message.name, message.id)) return
    const waiting = this.#waits.get(caller) ?? 0
    if (waiting >= this.#options.maxWaitsPerSession) {
      this.#fail(caller, message.id, new RateLimitError(`At most ${this.#options.maxWaitsPerSession} lock requests may wait per connection`))
      return
    }
    if (!caller.isOpen || this.#closed) return
    const state = this.#state(message.name)
    const waiter: Waiter = { caller, id: message.id, ttl: message.ttl, since: this.#options.now(), timer: undefined }
    state.waiters.push(waiter)
    this.#waits.set(caller, waiting + 1)
    const timeout = (): void => {
      const at = state.waiters.indexOf(waiter)
      if (at === -1) return
      state.waiters.splice(at, 1)
      this.#doneWaiting(caller)
      this.#fail(caller, message.id, new LockError(`Lock ${message.name.slice(0, 64)} was not acquired within ${message.wait} ms; it is held by someone else. Retry later or wait longer`, { name: message.name.slice(0, 256), wait: message.wait }))
      this.#forget(state)
    }
    if (message.wait > 0) {
      waiter.timer = setTimeout(timeout, Math.min(message.wait, MAX_TIMER_MS))
      waiter.timer.unref?.()
    }
    await this.#pump(state)
    // wait 0: one attempt, then give up.
    if (message.wait === 0 && state.waiters.includes(waiter)) timeout()
  }

  /** Handles `lock-extend`: a new `expiresAt` for the current lease, or LOCK_FAILED for a stale token. */
  async extend(caller: Caller, message: { id: number; name: string; token: number; ttl: number }): Promise<void> {
    if (!this.#allowed(caller, message.name, message.id)) return
    const expiresAt = await this.#options.backend.extend(message.name, message.token, caller.principal.subject, message.ttl)
    if (expiresAt === undefined) {
      await this.#stale(caller, message.name, message.token, message.id)
      return
    }
    const state = this.#state(message.name)
    const lease = { token: message.token, expiresAt, subject: caller.principal.subject }
    this.#track(state, lease, caller)
    caller.send({ type: 'lock-granted', id: message.id, name: message.name, token: message.token, expiresAt })
  }

  /** Handles `lock-release`: frees the lease and grants the next waiter. */
  async release(caller: Caller, message: { id: number; name: string; token: number }): Promise<void> {
    if (!this.#allowed(caller, message.name, message.id)) return
    if (!(await this.#options.backend.release(message.name, message.token, caller.principal.subject))) {
      await this.#stale(caller, message.name, message.token, message.id)
      return
    }
    const state = this.#state(message.name)
    this.#untrack(state, message.token)
    caller.send({ type: 'lock-released', id: message.id, name: message.name })
    this.#options.announceRelease?.(message.name)
    await this.#pump(state)
  }

  /** Another relay ended a lease of `name` (bus): waiters here try at once. */
  released(name: string): void {
    const state = this.#locks.get(name)
    if (state !== undefined) void this.#pump(state)
  }

  /** Handles `lock-check`, the fencing check: is `token` the current unexpired lease? */
  async check(caller: Caller, message: { id: number; name: string; token: number }): Promise<void> {
    if (!this.#allowed(caller, message.name, message.id)) return
    const { valid, current } = await this.verify(message.name, message.token)
    caller.send({ type: 'lock-status', id: message.id, name: message.name, valid, current })
  }

  /** The fencing check without a session (HTTP). Check access with {@link mayUse} first. */
  async verify(name: string, token: number): Promise<{ valid: boolean; current: number }> {
    const { current, lease } = await this.#options.backend.read(name)
    return { valid: lease !== undefined && lease.token === token, current }
  }

  /** The lock's public state (HTTP `GET /locks/<name>`). */
  async info(name: string): Promise<LockInfo> {
    const { current, lease } = await this.#options.backend.read(name)
    return { name, current, holder: lease !== undefined, expiresAt: lease?.expiresAt ?? null }
  }

  /**
   * The locks this relay is working on — a lease it granted (with its holder's session) or
   * requests waiting — for the admin endpoints. Leases granted by other relays, or before a
   * restart, are read per name with {@link info}.
   */
  working(): { name: string; token: number | null; expiresAt: number | null; subject: string | null; holder: string | null; waiters: number }[] {
    return [...this.#locks.values()].map((state) => ({
      name: state.name,
      token: state.granted?.lease.token ?? null,
      expiresAt: state.granted?.lease.expiresAt ?? null,
      subject: state.granted?.lease.subject ?? null,
      holder: state.granted?.holder?.id ?? null,
      waiters: state.waiters.length,
    }))
  }

  /** Whether `principal` may use lock `name` under the rules. */
  mayUse(name: string, principal: Principal): boolean {
    return this.#options.rules.lockAccess(name, principal)
  }

  /** A session ended: its waiting requests are dropped; leases it holds run to their TTL. */
  sessionClosed(caller: Caller): void {
    this.#waits.delete(caller)
    for (const state of [...this.#locks.values()]) {
      if (state.granted?.holder === caller) state.granted.holder = undefined
      for (let i = state.waiters.length - 1; i >= 0; i--) {
        const waiter = state.waiters[i] as Waiter
        if (waiter.caller !== caller) continue
        if (waiter.timer !== undefined) clearTimeout(waiter.timer)
        state.waiters.splice(i, 1)
      }
      this.#forget(state)
    }
  }

  /** Stops every timer (relay shutdown). Leases stay in the backend and hold after a restart. */
  close(): void {
    this.#closed = true
    for (const state of this.#locks.values()) {
      if (state.granted?.timer !== undefined) clearTimeout(state.granted.timer)
      if (state.retry !== undefined) clearTimeout(state.retry)
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

  async #stale(caller: Caller, name: string, token: number, ref: number): Promise<void> {
    const { current } = await this.#options.backend.read(name)
    this.#fail(
      caller,
      ref,
      new LockError(`Token ${token} is not the current lease of lock ${name.slice(0, 64)} (the newest token is ${current}); it expired, was released or belongs to someone else. Acquire the lock again`, {
        name: name.slice(0, 256),
        token,
        current,
      }),
    )
  }

  #doneWaiting(caller: Caller): void {
    const left = (this.#waits.get(caller) ?? 1) - 1
    if (left <= 0) this.#waits.delete(caller)
    else this.#waits.set(caller, left)
  }

  /** Tries to grant the lock to the first live waiter; schedules a retry for when the lease it meets ends. */
  async #pump(state: LockState): Promise<void> {
    if (this.#closed || state.attempting) return
    while (state.waiters.length > 0 && !(state.waiters[0] as Waiter).caller.isOpen) {
      const gone = state.waiters.shift() as Waiter
      if (gone.timer !== undefined) clearTimeout(gone.timer)
      this.#doneWaiting(gone.caller)
    }
    const waiter = state.waiters[0]
    if (waiter === undefined) {
      this.#forget(state)
      return
    }
    state.attempting = true
    let attempt: GrantAttempt
    try {
      attempt = await this.#options.backend.grant(state.name, waiter.caller.principal.subject, waiter.ttl)
    } catch (error) {
      state.attempting = false
      state.waiters.splice(state.waiters.indexOf(waiter), 1)
      if (waiter.timer !== undefined) clearTimeout(waiter.timer)
      this.#doneWaiting(waiter.caller)
      this.#options.logger.error({ err: error, lock: state.name }, 'cannot decide a lock grant')
      this.#fail(waiter.caller, waiter.id, new LockError(`Lock ${state.name.slice(0, 64)} could not be granted: its fencing token could not be stored. Retry later`, { name: state.name.slice(0, 256) }))
      void this.#pump(state)
      return
    }
    state.attempting = false
    if (!attempt.granted) {
      // Busy: try again when that lease ends (sooner if it is released here or, via the bus, elsewhere).
      if (state.retry !== undefined) clearTimeout(state.retry)
      state.retry = setTimeout(
        () => {
          state.retry = undefined
          void this.#pump(state)
        },
        Math.min(Math.max(attempt.holderUntil - attempt.now, 0) + 5, this.#options.retryMs ?? MAX_TIMER_MS, MAX_TIMER_MS),
      )
      state.retry.unref?.()
      return
    }
    const at = state.waiters.indexOf(waiter)
    if (at !== -1) state.waiters.splice(at, 1)
    if (waiter.timer !== undefined) clearTimeout(waiter.timer)
    this.#doneWaiting(waiter.caller)
    const { lease } = attempt
    if (this.#closed) return
    if (at === -1 || !waiter.caller.isOpen) {
      // The requester gave up or left while its token was committed: nobody holds it, so free it now.
      await this.#options.backend.release(state.name, lease.token, lease.subject).catch(() => undefined)
      void this.#pump(state)
      return
    }
    this.#track(state, lease, waiter.caller)
    this.#options.metrics.lockGrants.inc()
    this.#options.metrics.lockWaitSeconds.observe(Math.max(0, this.#options.now() - waiter.since) / 1000)
    waiter.caller.send({ type: 'lock-granted', id: waiter.id, name: state.name, token: lease.token, expiresAt: lease.expiresAt })
  }

  /** Watches a lease this relay granted or extended, to tell its holder when it expires. */
  #track(state: LockState, lease: StoredLease, holder: Caller): void {
    if (state.granted?.timer !== undefined) clearTimeout(state.granted.timer)
    const granted: NonNullable<LockState['granted']> = { lease, holder, timer: undefined }
    state.granted = granted
    const delay = Math.min(Math.max(lease.expiresAt - this.#options.now(), 0), MAX_TIMER_MS)
    granted.timer = setTimeout(() => void this.#expire(state, granted), delay)
    granted.timer.unref?.()
  }

  #untrack(state: LockState, token: number): void {
    if (state.granted?.lease.token !== token) return
    if (state.granted.timer !== undefined) clearTimeout(state.granted.timer)
    state.granted = undefined
  }

  async #expire(state: LockState, granted: NonNullable<LockState['granted']>): Promise<void> {
    if (state.granted !== granted || this.#closed) return
    const { lease } = await this.#options.backend.read(state.name).catch(() => ({ lease: undefined as StoredLease | undefined }))
    if (state.granted !== granted) return
    if (lease !== undefined && lease.token === granted.lease.token) {
      // Extended (from another relay, or the clocks differ): watch the new end.
      this.#track(state, lease, granted.holder as Caller)
      if (granted.holder === undefined && state.granted !== undefined) state.granted.holder = undefined
      return
    }
    state.granted = undefined
    const holder = granted.holder
    if (holder?.isOpen === true) holder.send({ type: 'lock-lost', name: state.name, token: granted.lease.token, reason: 'expired' })
    this.#options.announceRelease?.(state.name)
    await this.#pump(state)
  }
}
