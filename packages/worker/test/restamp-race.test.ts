/**
 * Re-stamping after `welcome` (SyncHost.clockCorrected) runs as a committer job that awaits
 * a store commit. A counter increment made during that await merges into memory at once;
 * the job must not then put back the state it read before the await, or the increment is
 * lost from memory and every later increment of this device is built on the smaller slot
 * (found by reliability scenario N1, seed 2470866236). Real relay, engines on fake IndexedDB;
 * the store's commit is only delayed so the increment lands inside the job's await.
 */
import { afterEach, expect, it } from 'vitest'
import { createRelay, type Relay } from '@outpost/server-lite'
import type { Value } from '@outpost/core'
import type { Engine } from '../src/engine'
import { counterValue, engineOn, freshIdb, tempDir, unwrap, waitFor } from './helpers'

const FIVE_MINUTES = 5 * 60_000
let relay: Relay | undefined
let remove: (() => void) | undefined
const engines = new Set<Engine>()

afterEach(async () => {
  for (const e of engines) await e.close()
  engines.clear()
  await relay?.close()
  remove?.()
})

const value = (e: Engine): Promise<Value> => counterValue(e, 'likes', '')

it('an increment made while pending writes are re-stamped after welcome is kept', async () => {
  const dir = tempDir()
  remove = dir.remove
  relay = await createRelay({ port: 0, host: '127.0.0.1', dataDir: dir.path, logLevel: 'silent' })
  // Five minutes fast and offline: its pending increment is stamped under a stale offset, so welcome re-stamps it.
  const fast = engineOn(freshIdb(), { url: relay.url, now: () => Date.now() + FIVE_MINUTES, startOffline: true })
  engines.add(fast)
  unwrap(await fast.counterAdd('likes', 3))
  await fast.flush()

  const store = fast.store
  if (store === undefined) throw new Error('engine has no store')
  const commit = store.commit.bind(store)
  let raced: Promise<unknown> | undefined
  store.commit = async (batch) => {
    if (raced === undefined && batch.meta?.some((m) => m.key === 'clockOffset')) {
      // The re-stamp job's commit: an increment arrives while it is under way.
      raced = fast.counterAdd('likes', 2)
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    return commit(batch)
  }
  await fast.setOffline(false)
  await waitFor('the re-stamp ran', async () => raced !== undefined, 10_000)
  unwrap((await raced) as never)
  // Read before the relay can answer the increment: memory alone must hold both.
  expect(await value(fast)).toBe(5)
  await waitFor('every write persisted', async () => (await fast.status()).pendingWrites === 0, 10_000)
  expect(await value(fast)).toBe(5)

  unwrap(await fast.counterAdd('likes', 4))
  await waitFor('every write persisted', async () => (await fast.status()).pendingWrites === 0, 10_000)
  expect(await value(fast)).toBe(9)
  const other = engineOn(freshIdb(), { url: relay.url })
  engines.add(other)
  await waitFor('the relay holds every increment', async () => (await value(other)) === 9, 10_000)
})
