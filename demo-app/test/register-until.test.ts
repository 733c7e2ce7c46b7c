/**
 * The demo keeps registering what the device replicates while the engine only failed to
 * answer in time (TIMEOUT, WORKER_UNAVAILABLE: the client restarts it and says to retry),
 * and stops at once on any other failure. Fake timers: no wall-clock waits.
 */
import { ForbiddenError, TimeoutError, WorkerUnavailableError, type OutpostError } from '@outpost/client'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { RETRY_FIRST_MS, RETRY_MAX_MS, registerUntilDone } from '../src/register-until'

beforeEach(() => {
  vi.useFakeTimers()
})
afterEach(() => {
  vi.useRealTimers()
})

/** A register that fails with `errors` in turn, then succeeds. */
function flaky(errors: Error[]) {
  let calls = 0
  return {
    get calls() {
      return calls
    },
    register: async () => {
      const error = errors[calls++]
      if (error !== undefined) throw error
    },
  }
}

describe('registerUntilDone', () => {
  it('registers again after the engine did not answer, with growing waits, and reports the recovery', async () => {
    const target = flaky([new TimeoutError('did not answer subscribeShape'), new WorkerUnavailableError('restarting'), new TimeoutError('again')])
    const failures: (OutpostError | null)[] = []
    let recovered = 0
    const done = registerUntilDone(target.register, () => true, (e) => failures.push(e), () => recovered++)
    await vi.advanceTimersByTimeAsync(0)
    expect(target.calls).toBe(1)
    await vi.advanceTimersByTimeAsync(RETRY_FIRST_MS)
    expect(target.calls).toBe(2)
    // The second wait is twice the first.
    await vi.advanceTimersByTimeAsync(RETRY_FIRST_MS)
    expect(target.calls).toBe(2)
    await vi.advanceTimersByTimeAsync(RETRY_FIRST_MS)
    expect(target.calls).toBe(3)
    await vi.advanceTimersByTimeAsync(4 * RETRY_FIRST_MS)
    await done
    expect(target.calls).toBe(4)
    expect(failures.map((e) => e?.code)).toEqual(['TIMEOUT', 'WORKER_UNAVAILABLE', 'TIMEOUT'])
    expect(recovered).toBe(1)
  })

  it('stops at once on a failure retrying cannot cure', async () => {
    const target = flaky([new ForbiddenError('no'), new TimeoutError('never reached')])
    const failures: (OutpostError | null)[] = []
    await registerUntilDone(target.register, () => true, (e) => failures.push(e))
    expect(target.calls).toBe(1)
    expect(failures.map((e) => e?.code)).toEqual(['FORBIDDEN'])
  })

  it('stops once its component no longer wants it, and caps the wait', async () => {
    const target = flaky(Array.from({ length: 50 }, () => new TimeoutError('slow')))
    let current = true
    const done = registerUntilDone(target.register, () => current, () => {})
    await vi.advanceTimersByTimeAsync(10 * RETRY_MAX_MS)
    // 1 + 2 + 4 + 8 s, then every 15 s: 1 + 4 waits in the first 15 s, then one per 15 s.
    expect(target.calls).toBeGreaterThanOrEqual(10)
    expect(target.calls).toBeLessThanOrEqual(15)
    current = false
    const calls = target.calls
    await vi.advanceTimersByTimeAsync(2 * RETRY_MAX_MS)
    await done
    expect(target.calls).toBe(calls)
  })
})
