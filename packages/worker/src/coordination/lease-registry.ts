/**
 * Lock leases this engine holds on the relay. A lease ends exactly once: by `release`, or
 * as *lost* — the relay's `lock-lost`, its TTL running out here without an extension
 * (in case that message never arrives), or the connection dropping. The last case is
 * conservative on purpose: the engine cannot know whether the relay still honours the
 * lease, so the holder must stop; the relay keeps it until its TTL, so nobody else gets
 * it early either.
 */
import type { LeaseInfo, LeaseLostReason } from '../engine-api'

interface HeldLease {
  info: LeaseInfo
  readonly onLost: (reason: LeaseLostReason) => void
  timer: ReturnType<typeof setTimeout> | undefined
}

/** The leases held through this engine, by engine id and by `name` + fencing token. */
export class LeaseRegistry {
  readonly #leases = new Map<number, HeldLease>()
  readonly #serverNow: () => number
  readonly #notify: (onLost: (reason: LeaseLostReason) => void, reason: LeaseLostReason) => void
  #nextId = 1

  /** `serverNow` is the relay's clock as this device estimates it (lease expiry is in relay time). */
  constructor(serverNow: () => number, notify: (onLost: (reason: LeaseLostReason) => void, reason: LeaseLostReason) => void) {
    this.#serverNow = serverNow
    this.#notify = notify
  }

  /** Records a granted lease and arms its expiry; returns the engine's view of it. */
  add(name: string, token: number, expiresAt: number, onLost: (reason: LeaseLostReason) => void): LeaseInfo {
    const info: LeaseInfo = { id: this.#nextId++, name, token, expiresAt }
    const lease: HeldLease = { info, onLost, timer: undefined }
    this.#leases.set(info.id, lease)
    this.#arm(lease)
    return info
  }

  /** The lease with engine id `id`, if it is still held. */
  get(id: number): LeaseInfo | undefined {
    return this.#leases.get(id)?.info
  }

  /** A new expiry for a held lease (after `lock-extend`). */
  extended(id: number, expiresAt: number): LeaseInfo | undefined {
    const lease = this.#leases.get(id)
    if (lease === undefined) return undefined
    lease.info = { ...lease.info, expiresAt }
    this.#arm(lease)
    return lease.info
  }

  /** Forgets a lease without telling its holder (it released it). */
  released(id: number): void {
    const lease = this.#leases.get(id)
    if (lease === undefined) return
    clearTimeout(lease.timer)
    this.#leases.delete(id)
  }

  /** The relay says lease `name`/`token` ended. */
  lostByToken(name: string, token: number, reason: LeaseLostReason): void {
    for (const lease of this.#leases.values()) {
      if (lease.info.name === name && lease.info.token === token) this.#lose(lease, reason)
    }
  }

  /** The connection dropped: every lease is lost for its holder. */
  loseAll(reason: LeaseLostReason): void {
    for (const lease of [...this.#leases.values()]) this.#lose(lease, reason)
  }

  /** The leases held, oldest first (for the inspector). */
  list(): LeaseInfo[] {
    return [...this.#leases.values()].map((lease) => lease.info)
  }

  /** Leases currently held (for status and tests). */
  get size(): number {
    return this.#leases.size
  }

  #lose(lease: HeldLease, reason: LeaseLostReason): void {
    if (!this.#leases.delete(lease.info.id)) return
    clearTimeout(lease.timer)
    this.#notify(lease.onLost, reason)
  }

  #arm(lease: HeldLease): void {
    clearTimeout(lease.timer)
    const ms = Math.max(0, lease.info.expiresAt - this.#serverNow())
    lease.timer = setTimeout(() => this.#lose(lease, 'expired'), ms)
  }
}
