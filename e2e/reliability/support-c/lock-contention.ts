/**
 * Lock contention across relays: SDK clients on different relays compete for one lock,
 * each holder writes to a {@link RecordingFence} with its fencing token, and some holders
 * misbehave on purpose — they pause past their TTL (a GC pause, a suspended laptop) and
 * then write anyway, after another holder has written — so the fence has stale tokens to
 * refuse. Relay kills in the scenario cut holders off mid-lease; their leases stay held in
 * Postgres until the TTL, so nobody else may get the lock before then.
 *
 * Every grant is logged with when this process saw it, its token, its `expiresAt` and when
 * the holder released it; {@link auditGrants} finds double grants from those times alone.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import type { OutpostClient } from '@outpost/client'
import type { RecordingFence } from './recording-fence'

/** One lease a worker got. */
export interface GrantRecord {
  readonly worker: string
  readonly token: number
  /** When this process saw the grant (ms since epoch; relays and Postgres share this machine's clock). */
  readonly seenAt: number
  /** When the lease ends unless released (the deciding clock: Postgres's). */
  readonly expiresAt: number
  /** When the holder asked to release it (before the request left), if it did. */
  releasedAt?: number
  /** When the client reported it lost, if it did (a relay died under it, or the TTL ran out). */
  lostAt?: number
  /** The holder paused past its TTL before writing (a deliberate stale write follows). */
  paused: boolean
}

/** Options of {@link runLockWorker}. */
export interface LockWorkerOptions {
  readonly name: string
  readonly client: OutpostClient
  readonly lock: string
  readonly ttlMs: number
  /** Fence writes per lease. */
  readonly writesPerLease: number
  /** Chance a lease's holder pauses past its TTL and then writes (a stale write). */
  readonly pauseChance: number
  readonly random: () => number
  readonly fence: RecordingFence
  readonly grants: GrantRecord[]
  /** Acquire failures by error code (offline while its relay is down, LOCK_FAILED after `wait`). */
  readonly failures: Map<string, number>
  /** Stops the loop (checked between leases). */
  readonly stopped: () => boolean
  /** Receives each write made after a pause past the TTL, so the caller can also ask a relay's fence about its token. */
  readonly onPausedWrite?: (token: number, accepted: boolean) => void
}

/** A margin under `expiresAt` inside which a holder no longer counts its lease as valid (ms). */
export const VALIDITY_MARGIN_MS = 100

/** Acquire → write with the token → release, until stopped; see the module comment. */
export async function runLockWorker(o: LockWorkerOptions): Promise<void> {
  const handle = o.client.lock(o.lock)
  while (!o.stopped()) {
    let lease
    try {
      lease = await handle.acquire({ ttl: o.ttlMs, wait: 3 * o.ttlMs })
    } catch (error) {
      const code = (error as { code?: unknown }).code
      const key = typeof code === 'string' ? code : error instanceof Error ? error.name : 'unknown'
      o.failures.set(key, (o.failures.get(key) ?? 0) + 1)
      await sleep(50 + o.random() * 200)
      continue
    }
    const grant: GrantRecord = { worker: o.name, token: lease.fencingToken, seenAt: Date.now(), expiresAt: lease.expiresAt, paused: o.random() < o.pauseChance }
    o.grants.push(grant)
    lease.onLost(() => {
      grant.lostAt = Date.now()
    })
    const believedValid = (): boolean => !lease.ended && Date.now() < lease.expiresAt - VALIDITY_MARGIN_MS
    for (let w = 0; w < o.writesPerLease; w++) {
      await sleep(5 + o.random() * 40)
      o.fence.write(grant.token, o.name, believedValid())
    }
    if (grant.paused) {
      // Past the TTL and until someone else has written (bounded): the write below is stale.
      await sleep(Math.max(0, grant.expiresAt - Date.now()) + 50)
      const deadline = Date.now() + 4 * o.ttlMs
      while (o.fence.highestToken <= grant.token && Date.now() < deadline && !o.stopped()) await sleep(20)
      o.onPausedWrite?.(grant.token, o.fence.write(grant.token, o.name, believedValid()))
      continue
    }
    if (!lease.ended) {
      grant.releasedAt = Date.now()
      // A release the relay no longer takes (its lease was lost meanwhile) changes nothing.
      await lease.release().catch(() => undefined)
    }
  }
}

/** What the grant log shows. */
export interface GrantAudit {
  readonly grants: number
  /** Pairs of leases where the later was seen before the earlier one ended (released or expired). */
  readonly doubleGrants: readonly string[]
  /** Places where a later grant carried a token not greater than an earlier one. */
  readonly nonIncreasing: readonly string[]
}

/**
 * Double grants and token order from the grant log. The lease `a` ends for certain at
 * `min(releasedAt, expiresAt)`: a relay cannot act on a release before the holder sent it,
 * nor let a lease outlive its `expiresAt`. A grant seen before that moment overlaps `a`.
 */
export function auditGrants(grants: readonly GrantRecord[]): GrantAudit {
  const bySeen = [...grants].sort((x, y) => x.seenAt - y.seenAt)
  const doubleGrants: string[] = []
  const nonIncreasing: string[] = []
  for (let i = 1; i < bySeen.length; i++) {
    const a = bySeen[i - 1] as GrantRecord
    const b = bySeen[i] as GrantRecord
    if (b.token <= a.token) nonIncreasing.push(`token ${b.token} (${b.worker}) granted after ${a.token} (${a.worker})`)
    const aEnded = Math.min(a.releasedAt ?? Number.POSITIVE_INFINITY, a.expiresAt)
    if (b.seenAt < aEnded) doubleGrants.push(`token ${b.token} (${b.worker}) seen at ${b.seenAt}, ${aEnded - b.seenAt} ms before token ${a.token} (${a.worker}) ended`)
  }
  return { grants: grants.length, doubleGrants, nonIncreasing }
}
