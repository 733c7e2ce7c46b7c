/**
 * Registering what the device replicates must not give up when the engine was only slow:
 * a cold SharedWorker on a loaded device may not answer within the client's call timeout,
 * and the client then restarts it and fails the call with TIMEOUT (or WORKER_UNAVAILABLE)
 * saying "retry the call". Without a retry the device replicates nothing until reloaded,
 * though its engine is live.
 */
import { OutpostError } from '@outpost/client'

/** First wait before registering again (ms); it doubles up to {@link RETRY_MAX_MS}. */
export const RETRY_FIRST_MS = 1_000
/** Longest wait between two attempts (ms). */
export const RETRY_MAX_MS = 15_000

/** True for a failure a later attempt may not meet: the engine did not answer (it is being restarted). */
export function isRetryable(error: OutpostError | null): boolean {
  return error !== null && (error.code === 'TIMEOUT' || error.code === 'WORKER_UNAVAILABLE')
}

/** An `OutpostError`, or null (logged) for anything else. */
export function asOutpostError(error: unknown): OutpostError | null {
  if (error instanceof OutpostError) return error
  console.error('Outpost demo: unexpected replication failure', error)
  return null
}

/**
 * Runs `register` until it succeeds, fails for good, or `current()` turns false, telling
 * `failed` of each failure (to show it) and `recovered` once it succeeds after one.
 */
export async function registerUntilDone(
  register: () => Promise<void>,
  current: () => boolean,
  failed: (error: OutpostError | null) => void,
  recovered: () => void = () => {},
): Promise<void> {
  let failures = 0
  for (let wait = RETRY_FIRST_MS; current(); wait = Math.min(wait * 2, RETRY_MAX_MS)) {
    try {
      await register()
      if (failures > 0 && current()) recovered()
      return
    } catch (error) {
      failures++
      const outpostError = asOutpostError(error)
      if (current()) failed(outpostError)
      if (!isRetryable(outpostError)) return
    }
    await new Promise((resolve) => setTimeout(resolve, wait))
  }
}
