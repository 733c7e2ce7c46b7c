/**
 * Where lock grants are decided and kept (see `locks.ts` for the service around them), and
 * the backend of a relay that runs alone: tokens and leases in its store's metadata.
 */
import type { Store, StoreBatch, Value } from '@outpost/core'

/** A lease as the backend records it. */
export interface StoredLease {
  readonly token: number
  /** Ms since the epoch, by the deciding clock. */
  readonly expiresAt: number
  readonly subject: string
}

/** A lock as the backend knows it. */
export interface StoredLock {
  /** The newest token issued (0 before the first grant). */
  readonly current: number
  /** The lease, when one is held and unexpired by the deciding clock. */
  readonly lease: StoredLease | undefined
  /** The deciding clock when read (ms since the epoch). */
  readonly now: number
}

/** The result of a grant attempt. */
export type GrantAttempt = { readonly granted: true; readonly lease: StoredLease } | { readonly granted: false; readonly holderUntil: number; readonly now: number }

/** The store metadata key of a lock's highest token (one-relay backend). */
export function lockTokenKey(name: string): string {
  return `lock-token:${name}`
}

/** The store metadata key of a lock's current lease (one-relay backend). */
export function lockLeaseKey(name: string): string {
  return `lock-lease:${name}`
}

/** Where grants are decided and kept; see the module comment. */
export interface LockBackend {
  read(name: string): Promise<StoredLock>
  grant(name: string, subject: string, ttl: number): Promise<GrantAttempt>
  extend(name: string, token: number, subject: string, ttl: number): Promise<number | undefined>
  release(name: string, token: number, subject: string): Promise<boolean>
}

/**
 * One relay's backend: tokens and leases in its store's metadata, decided in this process
 * (one grant at a time per lock), timed by the relay's clock. A lease survives a restart.
 */
export class KvLockBackend implements LockBackend {
  readonly #store: Pick<Store, 'getMeta'>
  readonly #commit: (batch: StoreBatch) => Promise<unknown>
  readonly #now: () => number
  /** Grants in flight per lock: one at a time, so two cannot take the same token. */
  readonly #queues = new Map<string, Promise<unknown>>()

  constructor(store: Pick<Store, 'getMeta'>, commit: (batch: StoreBatch) => Promise<unknown>, now: () => number) {
    this.#store = store
    this.#commit = commit
    this.#now = now
  }

  #serial<T>(name: string, work: () => Promise<T>): Promise<T> {
    const previous = this.#queues.get(name) ?? Promise.resolve()
    const next = previous.then(work, work)
    const tail = next.catch(() => undefined)
    this.#queues.set(name, tail)
    void tail.then(() => {
      if (this.#queues.get(name) === tail) this.#queues.delete(name)
    })
    return next
  }

  async read(name: string): Promise<StoredLock> {
    const [token, lease] = await Promise.all([this.#store.getMeta(lockTokenKey(name)), this.#store.getMeta(lockLeaseKey(name))])
    const current = typeof token === 'number' ? token : 0
    const now = this.#now()
    const persisted = parseLease(lease)
    return { current, lease: persisted !== undefined && persisted.token === current && persisted.expiresAt > now ? persisted : undefined, now }
  }

  grant(name: string, subject: string, ttl: number): Promise<GrantAttempt> {
    return this.#serial(name, async () => {
      const { current, lease, now } = await this.read(name)
      if (lease !== undefined) return { granted: false, holderUntil: lease.expiresAt, now }
      // Computed before the commit and persisted as is: the lease can only be shorter than promised, never longer.
      const record: StoredLease = { token: current + 1, expiresAt: now + ttl, subject }
      await this.#commit({ meta: [{ key: lockTokenKey(name), value: record.token }, { key: lockLeaseKey(name), value: { ...record } }] })
      return { granted: true, lease: record }
    })
  }

  extend(name: string, token: number, subject: string, ttl: number): Promise<number | undefined> {
    return this.#serial(name, async () => {
      const { lease, now } = await this.read(name)
      if (lease === undefined || lease.token !== token || lease.subject !== subject) return undefined
      const expiresAt = now + ttl
      await this.#commit({ meta: [{ key: lockLeaseKey(name), value: { ...lease, expiresAt } }] })
      return expiresAt
    })
  }

  release(name: string, token: number, subject: string): Promise<boolean> {
    return this.#serial(name, async () => {
      const { lease } = await this.read(name)
      if (lease === undefined || lease.token !== token || lease.subject !== subject) return false
      await this.#commit({ meta: [{ key: lockLeaseKey(name), value: null }] })
      return true
    })
  }
}

function parseLease(value: Value | undefined): StoredLease | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Date || value instanceof Uint8Array) return undefined
  const record = value as { readonly [field: string]: Value }
  const { token, expiresAt, subject } = record
  if (typeof token !== 'number' || typeof expiresAt !== 'number' || typeof subject !== 'string') return undefined
  return { token, expiresAt, subject }
}
