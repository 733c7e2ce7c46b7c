/**
 * The resource a lock protects, as a real one would guard itself: server-lite's
 * `FencedResource` (keeps the highest token it accepted, refuses lower ones), plus a log of
 * every write attempt in order — token, holder, whether the holder believed its lease was
 * still valid, accepted or refused — so the scenario can check from the log alone that
 * tokens only went up, that every stale token was refused, and that no holder with a valid
 * lease was ever refused (which would mean two valid leases at once: a double grant).
 */
import { FencedResource } from '@outpost/server-lite'

/** One write attempt on the resource. */
export interface FenceAttempt {
  /** Attempt order (0, 1, 2, …). */
  readonly order: number
  readonly token: number
  /** Which lock worker wrote. */
  readonly holder: string
  /** When (ms since epoch, this process's clock). */
  readonly at: number
  /**
   * The holder believed its lease valid: not released, not reported lost, and at least a
   * safety margin before its `expiresAt`. A refusal of such a write means a newer token
   * was granted while this one was still valid.
   */
  readonly believedValid: boolean
  /** The highest token accepted before this attempt (0 before the first). */
  readonly highestBefore: number
  readonly accepted: boolean
}

/** What the log shows (see {@link RecordingFence.audit}). */
export interface FenceAudit {
  readonly attempts: number
  readonly accepted: number
  /** Attempts whose token was below one already accepted. */
  readonly stale: number
  /** Stale attempts the resource accepted (must be 0). */
  readonly staleAccepted: number
  /** Fresh attempts the resource refused (must be 0: the fence refuses only stale tokens). */
  readonly freshRefused: number
  /** Refused attempts whose holder believed its lease valid (must be 0: a double grant). */
  readonly validRefused: number
  /** Places where the accepted tokens went down (must be 0). */
  readonly acceptedOutOfOrder: number
  /** The accepted tokens' distinct values, in the order the resource took them. */
  readonly tokenOrder: readonly number[]
}

/** See the module comment. */
export class RecordingFence {
  readonly #resource = new FencedResource<number>(0)
  readonly #log: FenceAttempt[] = []

  /** Every attempt so far, in order. */
  get log(): readonly FenceAttempt[] {
    return this.#log
  }

  /** The highest token the resource accepted. */
  get highestToken(): number {
    return this.#resource.highestToken
  }

  /** Tries one write with `token`; returns whether the resource accepted it. */
  write(token: number, holder: string, believedValid: boolean): boolean {
    const highestBefore = this.#resource.highestToken
    let accepted = true
    try {
      this.#resource.write(token, (count) => count + 1)
    } catch {
      // A refusal is the outcome under test; it is recorded, not thrown.
      accepted = false
    }
    this.#log.push({ order: this.#log.length, token, holder, at: Date.now(), believedValid, highestBefore, accepted })
    return accepted
  }

  /** Recomputes, from the log alone, what the fence must have done. */
  audit(): FenceAudit {
    let highest = 0
    let stale = 0
    let staleAccepted = 0
    let freshRefused = 0
    let validRefused = 0
    let acceptedOutOfOrder = 0
    let accepted = 0
    const tokenOrder: number[] = []
    for (const attempt of this.#log) {
      const isStale = attempt.token < highest
      if (isStale) stale++
      if (attempt.accepted) {
        accepted++
        if (isStale) staleAccepted++
        if (attempt.token < highest) acceptedOutOfOrder++
        if (tokenOrder.at(-1) !== attempt.token) tokenOrder.push(attempt.token)
        highest = Math.max(highest, attempt.token)
      } else {
        if (!isStale) freshRefused++
        if (attempt.believedValid) validRefused++
      }
    }
    return { attempts: this.#log.length, accepted, stale, staleAccepted, freshRefused, validRefused, acceptedOutOfOrder, tokenOrder }
  }

  /** The resource's own count of accepted writes (cross-checks the log). */
  get resourceAccepted(): number {
    return this.#resource.accepted
  }
}
