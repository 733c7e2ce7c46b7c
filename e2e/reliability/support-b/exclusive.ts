/**
 * A machine-wide mutex for the scenarios that load the machine (S1's fuzzing) or measure
 * timing (S6's latencies): vitest runs test files in parallel, and S6's figures taken while
 * S1 saturates both cores would measure S1. A lock directory (mkdir is atomic) holds the
 * owner's PID; a lock whose owner is gone is taken over.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

const LOCK = join(tmpdir(), 'outpost-reliability-exclusive.lock')

function ownerAlive(): boolean {
  try {
    const pid = Number(readFileSync(join(LOCK, 'pid'), 'utf8'))
    if (!Number.isInteger(pid) || pid <= 0) return false
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Runs `fn` while no other process runs an exclusive scenario; waits up to `waitMs` for its turn. */
export async function exclusive<T>(name: string, fn: () => Promise<T>, waitMs = 600_000): Promise<T> {
  const deadline = Date.now() + waitMs
  let waited = false
  for (;;) {
    try {
      mkdirSync(LOCK)
      writeFileSync(join(LOCK, 'pid'), String(process.pid))
      break
    } catch {
      // Held: by a live process (wait), or left by a dead one (take it over). A holder may
      // not have written its pid yet: only a lock older than a second with no live owner is stale.
      if (!ownerAlive()) {
        await sleep(1_000)
        if (!ownerAlive()) rmSync(LOCK, { recursive: true, force: true })
        continue
      }
      if (!waited) console.log(`${name}: waiting for another exclusive reliability scenario to finish`)
      waited = true
      if (Date.now() > deadline) throw new Error(`${name}: the exclusive lock ${LOCK} was held for over ${waitMs} ms`)
      await sleep(500)
    }
  }
  try {
    return await fn()
  } finally {
    rmSync(LOCK, { recursive: true, force: true })
  }
}
