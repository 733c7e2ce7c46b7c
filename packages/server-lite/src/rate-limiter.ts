/**
 * Write rates: a token bucket per connection and one per subject (shared by all of that
 * user's connections), so neither one socket nor one user with many sockets can take more
 * than its share of the relay. Time is injected so tests control it.
 *
 * A request costs its number of changes (1 for a topic publish or an invocation). It is
 * granted only when both buckets hold enough tokens, and then taken from both. A refused
 * request is answered RATE_LIMITED with the wait; a client that keeps sending while told
 * to wait (past a short grace for requests already in flight) earns strikes and is closed.
 */

/** A token bucket: `rate` tokens per second up to `burst`. */
export class TokenBucket {
  readonly #rate: number
  readonly #burst: number
  readonly #now: () => number
  #tokens: number
  #at: number

  constructor(rate: number, burst: number, now: () => number = Date.now) {
    this.#rate = rate
    this.#burst = burst
    this.#now = now
    this.#tokens = burst
    this.#at = now()
  }

  #refill(): void {
    const t = this.#now()
    this.#tokens = Math.min(this.#burst, this.#tokens + (Math.max(0, t - this.#at) * this.#rate) / 1000)
    this.#at = t
  }

  /**
   * The ms to wait before `cost` tokens could be taken (0: now). A cost above the burst is
   * granted when the bucket is full and leaves it in debt, so it is slow, never impossible.
   */
  wait(cost: number): number {
    this.#refill()
    const needed = Math.min(cost, this.#burst)
    return needed <= this.#tokens ? 0 : Math.ceil(((needed - this.#tokens) * 1000) / this.#rate)
  }

  /** Takes `cost` tokens; returns 0 when granted, else the ms to wait (nothing taken). */
  take(cost: number): number {
    const wait = this.wait(cost)
    if (wait === 0) this.#tokens -= cost
    return wait
  }

  /** True when the bucket has refilled to its burst: forgetting it changes nothing. */
  get full(): boolean {
    this.#refill()
    return this.#tokens >= this.#burst
  }
}

/** One bucket per subject, created on first use and forgotten once full again. */
export class SubjectBuckets {
  readonly #buckets = new Map<string, TokenBucket>()
  readonly #rate: number
  readonly #burst: number
  readonly #now: () => number

  constructor(rate: number, burst: number, now: () => number = Date.now) {
    this.#rate = rate
    this.#burst = burst
    this.#now = now
  }

  /** The bucket of `subject`. */
  bucket(subject: string): TokenBucket {
    let bucket = this.#buckets.get(subject)
    if (bucket === undefined) {
      bucket = new TokenBucket(this.#rate, this.#burst, this.#now)
      this.#buckets.set(subject, bucket)
    }
    return bucket
  }

  /** True when `subject` has a bucket now. */
  has(subject: string): boolean {
    return this.#buckets.has(subject)
  }

  /** Forgets refilled buckets, so memory follows the subjects writing now, not every subject ever seen. */
  sweep(): void {
    for (const [subject, bucket] of this.#buckets) if (bucket.full) this.#buckets.delete(subject)
  }

  /** Buckets held (tests, metrics). */
  get size(): number {
    return this.#buckets.size
  }
}

/** Requests arriving this soon after the first refusal were probably sent before the client saw it: no strike. */
export const STRIKE_GRACE_MS = 1_000

/** The answer of {@link WriteRate.take}. */
export interface RateVerdict {
  /** 0 when granted; otherwise the ms the client should wait (`retryAfterMs`). */
  readonly wait: number
  /** `'connection'` or `'subject'`: which limit refused it (for the message). */
  readonly limit?: 'connection' | 'subject'
  /** True when the client has ignored its waits `strikes` times: close it. */
  readonly abusive: boolean
}

/** A connection's view of the rate limits: its own bucket, its subject's, and the strike count. */
export class WriteRate {
  readonly #connection: TokenBucket
  readonly #subject: () => TokenBucket | undefined
  readonly #strikes: number
  readonly #now: () => number
  #count = 0
  /** When the current run of refusals began (undefined while requests are granted). */
  #refusedSince: number | undefined
  /** The latest time the client was told it may retry. */
  #retryAt = 0

  constructor(options: { connection: TokenBucket; subject: () => TokenBucket | undefined; strikes: number; now: () => number }) {
    this.#connection = options.connection
    this.#subject = options.subject
    this.#strikes = options.strikes
    this.#now = options.now
  }

  /** Takes `cost` from both buckets, or from neither; see {@link RateVerdict}. */
  take(cost: number): RateVerdict {
    const subject = this.#subject()
    const connectionWait = this.#connection.wait(cost)
    const subjectWait = subject?.wait(cost) ?? 0
    if (connectionWait === 0 && subjectWait === 0) {
      this.#connection.take(cost)
      subject?.take(cost)
      this.#count = 0
      this.#refusedSince = undefined
      return { wait: 0, abusive: false }
    }
    const now = this.#now()
    this.#refusedSince ??= now
    // A strike: sent before the retry time it was given, and too late to have been in flight when it was given.
    if (now < this.#retryAt && now - this.#refusedSince >= STRIKE_GRACE_MS) this.#count++
    const wait = Math.max(connectionWait, subjectWait)
    this.#retryAt = Math.max(this.#retryAt, now + wait)
    return { wait, limit: subjectWait > connectionWait ? 'subject' : 'connection', abusive: this.#count >= this.#strikes }
  }
}
