/**
 * The write-rate rules with an injected clock: a request is granted only when both the
 * connection's and the subject's bucket can pay, and then paid by both; a request larger
 * than a burst is slow, never impossible; strikes count only requests sent while told to
 * wait and after a grace for requests already in flight; refilled subject buckets are
 * forgotten.
 */
import { describe, expect, it } from 'vitest'
import { STRIKE_GRACE_MS, SubjectBuckets, TokenBucket, WriteRate } from '../src/rate-limiter'

function clock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start
  return { now: () => t, advance: (ms) => (t += ms) }
}

describe('token bucket', () => {
  it('grants up to the burst, then refills at the rate', () => {
    const c = clock()
    const bucket = new TokenBucket(10, 20, c.now)
    expect(bucket.take(20)).toBe(0)
    expect(bucket.take(1)).toBe(100)
    c.advance(100)
    expect(bucket.take(1)).toBe(0)
    expect(bucket.full).toBe(false)
    c.advance(2_000)
    expect(bucket.full).toBe(true)
  })

  it('grants a cost above the burst when full and leaves a debt, instead of refusing it forever', () => {
    const c = clock()
    const bucket = new TokenBucket(10, 20, c.now)
    expect(bucket.take(50)).toBe(0)
    // 30 tokens in debt: one token needs 3.1 s.
    expect(bucket.take(1)).toBe(3_100)
    c.advance(3_100)
    expect(bucket.take(1)).toBe(0)
  })
})

describe('write rate', () => {
  it('pays from both buckets or neither; the subject bucket is shared', () => {
    const c = clock()
    const subjects = new SubjectBuckets(1, 150, c.now)
    const a1 = new WriteRate({ connection: new TokenBucket(1_000, 100, c.now), subject: () => subjects.bucket('alice'), strikes: 3, now: c.now })
    const a2 = new WriteRate({ connection: new TokenBucket(1_000, 100, c.now), subject: () => subjects.bucket('alice'), strikes: 3, now: c.now })
    expect(a1.take(100).wait).toBe(0)
    const refused = a2.take(100)
    expect(refused.wait).toBeGreaterThan(0)
    expect(refused.limit).toBe('subject')
    // Refused: a2's own bucket was not charged, so 50 (what the subject has left) still passes.
    expect(a2.take(50).wait).toBe(0)
    const bob = new WriteRate({ connection: new TokenBucket(1, 10, c.now), subject: () => subjects.bucket('bob'), strikes: 3, now: c.now })
    expect(bob.take(10).wait).toBe(0)
    expect(bob.take(1).limit).toBe('connection')
  })

  it('counts a strike only for a request sent before its retry time and after the in-flight grace', () => {
    const c = clock()
    const rate = new WriteRate({ connection: new TokenBucket(0.1, 1, c.now), subject: () => undefined, strikes: 3, now: c.now })
    expect(rate.take(1).wait).toBe(0)
    // A pipelined burst: all refused (wait 10 s), none a strike.
    for (let i = 0; i < 50; i++) expect(rate.take(1).abusive).toBe(false)
    // Still sending after the grace, while told to wait: strikes.
    c.advance(STRIKE_GRACE_MS)
    expect(rate.take(1).abusive).toBe(false)
    expect(rate.take(1).abusive).toBe(false)
    expect(rate.take(1).abusive).toBe(true)
  })

  it('does not count a retry sent at the time it was given, even when refused again', () => {
    const c = clock()
    const subjects = new SubjectBuckets(10, 10, c.now)
    const patient = new WriteRate({ connection: new TokenBucket(1_000, 1_000, c.now), subject: () => subjects.bucket('s'), strikes: 1, now: c.now })
    const greedy = new WriteRate({ connection: new TokenBucket(1_000, 1_000, c.now), subject: () => subjects.bucket('s'), strikes: 100, now: c.now })
    expect(greedy.take(10).wait).toBe(0)
    for (let round = 0; round < 5; round++) {
      const verdict = patient.take(10)
      expect(verdict.wait).toBeGreaterThan(0)
      expect(verdict.abusive).toBe(false)
      c.advance(verdict.wait)
      // Another connection of the subject takes the refill just before the patient one retries.
      expect(greedy.take(10).wait).toBe(0)
    }
  })
})

describe('subject buckets', () => {
  it('forgets buckets that have refilled, and only those', () => {
    const c = clock()
    const subjects = new SubjectBuckets(10, 10, c.now)
    subjects.bucket('a').take(10)
    subjects.bucket('b')
    subjects.sweep()
    expect(subjects.size).toBe(1)
    c.advance(1_000)
    subjects.sweep()
    expect(subjects.size).toBe(0)
  })
})
