/**
 * A move-out drops a key from memory unless a local write of it is pending: the write may
 * bring the key back into the shape, and the relay does not echo a device's own write to it.
 * "Pending" has to include a local write the committer has merged into memory but not yet
 * committed and put in the outbox: a move-out arriving in that window dropped the write from
 * memory (and, at the next flush, from the store), while the relay took it and the key
 * matched the shape again — this device no longer showed its own committed write. Real
 * relay, engines on fake IndexedDB; only the local commit is held until the move-out is in.
 */
import { afterEach, expect, it } from 'vitest'
import { createRelay, type Relay } from '@outpost/server-lite'
import type { Engine } from '../src/engine'
import { OUTBOX_COLLECTION } from '../src/outbox'
import { engineOn, freshIdb, tempDir, unwrap, waitFor } from './helpers'

let relay: Relay | undefined
let remove: (() => void) | undefined
const engines = new Set<Engine>()

afterEach(async () => {
  for (const e of engines) await e.close()
  engines.clear()
  await relay?.close()
  remove?.()
})

function start(options: Parameters<typeof engineOn>[1] = {}): Engine {
  const engine = engineOn(freshIdb(), { url: relay?.url, ...options })
  engines.add(engine)
  return engine
}

async function live(engine: Engine): Promise<void> {
  await waitFor('live', async () => (await engine.status()).connection === 'live')
}

it('a move-out arriving while a local write of the key is being committed keeps the write', async () => {
  const dir = tempDir()
  remove = dir.remove
  relay = await createRelay({ port: 0, host: '127.0.0.1', dataDir: dir.path, logLevel: 'silent' })
  const mine = start()
  unwrap(await mine.subscribeShape({ map: 'tasks', where: { eq: ['status', 'open'] } }))
  const other = start()
  unwrap(await other.subscribeShape({ map: 'tasks' }))
  await live(mine)
  await live(other)
  unwrap(await other.set('tasks', 'k', { status: 'open', title: 't' }))
  await waitFor('k reached this device', async () => unwrap(await mine.get('tasks', 'k')) !== undefined)

  // The other device closes k (offline for now), then marks its frame's end with a key that moves in.
  await other.setOffline(true)
  unwrap(await other.update('tasks', 'k', { status: 'closed' }))
  unwrap(await other.set('tasks', 'marker', { status: 'open' }))
  await new Promise((resolve) => setTimeout(resolve, 5))

  const store = mine.store
  if (store === undefined) throw new Error('engine has no store')
  const commit = store.commit.bind(store)
  let held = false
  store.commit = async (batch) => {
    if (!held && batch.puts?.some((p) => p.collection === OUTBOX_COLLECTION)) {
      held = true
      // Our reopening of k is in memory, its commit under way: the relay's move-out of k
      // (for the close, which our later write overrides) arrives now, before the marker.
      await other.setOffline(false)
      await waitFor('the move-out reached this device', async () => unwrap(await mine.get('tasks', 'marker')) !== undefined, 10_000)
      await mine.setOffline(true)
    }
    return commit(batch)
  }
  // Stamped after the close: this write wins, and k matches the shape again.
  unwrap(await mine.update('tasks', 'k', { status: 'open', note: 'mine' }))
  expect(held).toBe(true)
  // Offline from here on, so the relay cannot hand the key back: memory and the store must hold it.
  expect(unwrap(await mine.get('tasks', 'k'))).toMatchObject({ status: 'open', note: 'mine' })
  await mine.flush()
  expect(unwrap(await mine.get('tasks', 'k'))).toMatchObject({ status: 'open', note: 'mine' })
  await mine.setOffline(false)
  await waitFor('every write persisted', async () => (await mine.status()).pendingWrites === 0 && (await other.status()).pendingWrites === 0, 10_000)
  await waitFor('the other device sees the reopening', async () => (unwrap(await other.get('tasks', 'k')) as { note?: string } | undefined)?.note === 'mine', 10_000)
  expect(unwrap(await mine.get('tasks', 'k'))).toMatchObject({ status: 'open', title: 't', note: 'mine' })
})
