/**
 * The engine's side of the coordination primitives: topics (local fan-out + relay),
 * lock leases, and entry-processor invocation. Requests ride on the sync client's
 * session (see `SyncClient.request`); this class decides what a request means for the
 * engine's tabs: where a topic message goes, when a lease is lost, how long to wait.
 */
import { InternalError, InvalidKeyError, InvalidValueError, LockError, OfflineError, assertValue, type LockLostMessage, type SerializedError, type TopicMessage, type Value } from '@outpost/core'
import type { LeaseInfo, LeaseLostReason, LockStatus, PublishReceipt, TopicEvent } from '../engine-api'
import type { SyncClient } from '../sync/sync-client'
import { LeaseRegistry } from './lease-registry'
import { TopicHub } from './topic-hub'

/** Default bound (ms) on a coordination request's answer (a lock's `wait` is added to it). */
export const REQUEST_TIMEOUT_MS = 8_000
/** Lock TTL bounds accepted by the relay (ms). */
export const LOCK_TTL_RANGE = { min: 100, max: 3_600_000 } as const
/** Longest a lock acquisition may wait for earlier holders (ms). */
export const LOCK_MAX_WAIT_MS = 600_000

/** What the coordinator needs from the engine. */
export interface CoordinatorHost {
  /** The sync client, or undefined when the engine has no relay or is not open yet. */
  readonly sync: SyncClient | undefined
  /** This engine's replica id (stamped on local topic deliveries). */
  readonly replicaId: string
  /** The relay's clock as this device estimates it. */
  serverNow(): number
  /** Calls an app callback without letting its failure escape. */
  call<T>(fn: (value: T) => unknown, value: T): void
}

function checkName(name: unknown, what: string): asserts name is string {
  if (typeof name !== 'string' || name.length === 0 || name.length > 256) throw new InvalidKeyError(`a ${what} name must be a non-empty string of at most 256 characters`)
}

function checkMs(value: unknown, what: string, min: number, max: number): asserts value is number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidValueError(`${what} must be a whole number of milliseconds from ${min} to ${max}, got ${String(value)}`)
  }
}

/** Topics, leases and invocations of one engine. */
export class Coordinator {
  readonly #host: CoordinatorHost
  readonly #timeoutMs: number
  readonly #topics: TopicHub
  readonly #leases: LeaseRegistry
  #nextTopicSub = 1

  constructor(host: CoordinatorHost, options: { readonly requestTimeoutMs?: number } = {}) {
    this.#host = host
    this.#timeoutMs = options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS
    this.#topics = new TopicHub((fn, event) => host.call(fn, event))
    this.#leases = new LeaseRegistry(
      () => host.serverNow(),
      (fn, reason) => host.call(fn, reason),
    )
  }

  /** Leases currently held (for tests). @internal */
  get leaseCount(): number {
    return this.#leases.size
  }

  /** Leases held and topics subscribed, read by the inspector. */
  inspect(): { leases: LeaseInfo[]; topics: { topic: string; subscribers: number }[] } {
    return { leases: this.#leases.list(), topics: this.#topics.counts() }
  }

  // ───────────────────────────── topics ─────────────────────────────

  subscribeTopic(topic: string, client: string, onEvent: (event: TopicEvent) => void): number {
    checkName(topic, 'topic')
    const id = this.#nextTopicSub++
    if (this.#topics.add(id, topic, client, onEvent)) this.#host.sync?.sendControl({ type: 'topic-sub', topic })
    return id
  }

  unsubscribeTopic(id: number): void {
    const last = this.#topics.remove(id)
    if (last !== undefined) this.#host.sync?.sendControl({ type: 'topic-unsub', topic: last })
  }

  async publish(topic: string, client: string, data: Value): Promise<PublishReceipt> {
    checkName(topic, 'topic')
    assertValue(data, `topic ${topic}`)
    const local = this.#topics.publishLocal(topic, client, data, this.#host.replicaId)
    const sync = this.#host.sync
    // Ephemeral: a message the relay cannot take now is reported, never queued for later.
    if (sync === undefined || !sync.sessionOpen) return { local, remote: 'not-sent' }
    try {
      const answer = await sync.request((id) => ({ type: 'topic-pub', id, topic, data }), this.#timeoutMs)
      return answer.type === 'topic-ack' ? { local, remote: 'delivered', delivered: answer.delivered } : { local, remote: 'not-sent' }
    } catch (error) {
      // A refusal (rules, limits) is the caller's to see; a dropped connection is "not sent".
      if (error instanceof OfflineError) return { local, remote: 'not-sent' }
      throw error
    }
  }

  // ───────────────────────────── locks ─────────────────────────────

  async acquire(name: string, ttl: number, wait: number, onLost: (reason: LeaseLostReason) => void): Promise<LeaseInfo> {
    checkName(name, 'lock')
    checkMs(ttl, 'a lock ttl', LOCK_TTL_RANGE.min, LOCK_TTL_RANGE.max)
    checkMs(wait, 'a lock wait', 0, LOCK_MAX_WAIT_MS)
    const sync = this.#requireSync('acquire a lock')
    const answer = await sync.request((id) => ({ type: 'lock-acquire', id, name, ttl, wait }), wait + this.#timeoutMs)
    if (answer.type !== 'lock-granted') throw new LockError(`the relay answered lock-acquire with ${answer.type}`)
    return this.#leases.add(name, answer.token, answer.expiresAt, onLost)
  }

  async extend(leaseId: number, ttl: number): Promise<LeaseInfo> {
    checkMs(ttl, 'a lock ttl', LOCK_TTL_RANGE.min, LOCK_TTL_RANGE.max)
    const lease = this.#leases.get(leaseId)
    if (lease === undefined) throw new LockError('this lease was already released or lost; acquire the lock again', { lease: leaseId })
    const sync = this.#requireSync('extend a lock')
    const answer = await sync.request((id) => ({ type: 'lock-extend', id, name: lease.name, token: lease.token, ttl }), this.#timeoutMs)
    if (answer.type !== 'lock-granted') throw new LockError(`the relay answered lock-extend with ${answer.type}`)
    const extended = this.#leases.extended(leaseId, answer.expiresAt)
    if (extended === undefined) throw new LockError(`the lease on ${lease.name} was lost while it was being extended; acquire the lock again`, { name: lease.name })
    return extended
  }

  async release(leaseId: number): Promise<void> {
    const lease = this.#leases.get(leaseId)
    if (lease === undefined) return
    // Forget it first: whatever the relay answers, the holder has stopped using it.
    this.#leases.released(leaseId)
    const sync = this.#host.sync
    if (sync === undefined || !sync.sessionOpen) return // the relay ends it at its TTL
    try {
      await sync.request((id) => ({ type: 'lock-release', id, name: lease.name, token: lease.token }), this.#timeoutMs)
    } catch (error) {
      // An expired or unknown lease is released either way.
      if (!(error instanceof LockError) && !(error instanceof OfflineError)) throw error
    }
  }

  async check(name: string, token: number): Promise<LockStatus> {
    checkName(name, 'lock')
    if (typeof token !== 'number' || !Number.isInteger(token) || token < 0) throw new InvalidValueError(`a fencing token is a non-negative integer, got ${String(token)}`)
    const sync = this.#requireSync('check a fencing token')
    const answer = await sync.request((id) => ({ type: 'lock-check', id, name, token }), this.#timeoutMs)
    if (answer.type !== 'lock-status') throw new LockError(`the relay answered lock-check with ${answer.type}`)
    return { valid: answer.valid, current: answer.current }
  }

  // ───────────────────────────── entry processors ─────────────────────────────

  async invoke(map: string, key: string, processor: string, args: Value): Promise<Value> {
    checkName(map, 'map')
    if (typeof key !== 'string' || key.length > 1024) throw new InvalidKeyError('a key must be a string of at most 1024 characters')
    if (typeof processor !== 'string' || processor.length === 0 || processor.length > 128) throw new InvalidKeyError('a processor name must be a non-empty string of at most 128 characters')
    assertValue(args, `arguments of ${processor}`)
    const sync = this.#requireSync(`run the entry processor ${processor}`)
    const answer = await sync.request((id) => ({ type: 'invoke', id, map, key, processor, args }), this.#timeoutMs)
    if (answer.type !== 'invoke-result') throw new InternalError(`the relay answered invoke with ${answer.type}`)
    return answer.result
  }

  // ───────────────────────────── from the sync client ─────────────────────────────

  /** A `topic-msg` or `lock-lost` arrived. */
  onMessage(message: TopicMessage | LockLostMessage): void {
    if (message.type === 'topic-msg') this.#topics.deliverRemote(message.topic, message.data, message.from)
    else this.#leases.lostByToken(message.name, message.token, message.reason)
  }

  /** A session opened (re-subscribe topics) or was lost (leases are lost for their holders). */
  sessionChanged(up: boolean): void {
    if (up) {
      for (const topic of this.#topics.topics()) this.#host.sync?.sendControl({ type: 'topic-sub', topic })
    } else {
      this.#leases.loseAll('disconnected')
    }
  }

  /** The relay refused a topic subscription. */
  topicRefused(topic: string, error: SerializedError): boolean {
    return this.#topics.refuse(topic, error)
  }

  /** Engine close: leases are lost, subscriptions end. */
  close(): void {
    this.#leases.loseAll('disconnected')
    this.#topics.clear()
  }

  #requireSync(what: string): SyncClient {
    const sync = this.#host.sync
    if (sync === undefined) throw new OfflineError(`this client has no relay URL; it cannot ${what}`)
    return sync
  }
}
