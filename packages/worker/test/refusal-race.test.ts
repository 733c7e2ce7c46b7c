/**
 * Taking back a refused write (SyncHost.acked) runs as a committer job that awaits between
 * its reads: it loads the map of each refused write it has not loaded yet. A counter
 * increment made during that await is merged into memory and queued in the committer, not
 * yet in the outbox. The job must keep it like any other pending write of the key: a
 * counter's own entry totals every increment, so dropping the entry and rebuilding it from
 * the outbox alone shrank the slot below what the queued write sends, and every later
 * increment built on the smaller slot would be lost to the relay's max-merge (the N1 defect
 * of the re-stamp job, here in the refusal path). Real relay with rules, engines on fake
 * IndexedDB; the store's map load is only delayed so the increment lands inside the await.
 */
import { afterEach, expect, it } from 'vitest'
import { SignJWT } from 'jose'
import { createRelay, type Relay } from '@outpost/server-lite'
import type { Value } from '@outpost/core'
import type { Engine } from '../src/engine'
import { IdbStore } from '../src/store/idb-store'
import { counterValue, engineOn, freshIdb, tempDir, unwrap, waitFor } from './helpers'

const SECRET = 'refusal-race-test-secret-of-at-least-32-chars'
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

it('an increment made while refused writes are taken back is kept in memory', async () => {
  const dir = tempDir()
  remove = dir.remove
  // Counters may be written only by writers; the map `secret` by nobody (no rule for it).
  relay = await createRelay({
    port: 0,
    host: '127.0.0.1',
    dataDir: dir.path,
    logLevel: 'silent',
    auth: { secret: SECRET },
    rules: { maps: { $counters: { read: 'authenticated', write: { eq: ['role', 'writer'] } } } },
  })
  const token = await new SignJWT({ role: 'reader' }).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').setIssuedAt().setExpirationTime('1h').sign(new TextEncoder().encode(SECRET))
  const idb = freshIdb()
  const first = engineOn(idb, { url: relay.url, token, startOffline: true })
  engines.add(first)
  unwrap(await first.set('secret', 's1', { a: 1 }))
  unwrap(await first.counterAdd('likes', 3))
  await first.close()
  engines.delete(first)

  // After a restart `secret` is not in memory: taking back its refused write loads it first.
  const engine = engineOn(idb, { url: relay.url, token, startOffline: true })
  engines.add(engine)
  expect(await value(engine)).toBe(3)
  const store = engine.store
  if (!(store instanceof IdbStore)) throw new Error('engine has no IndexedDB store')
  const load = store.readPages.bind(store)
  let raced: Promise<unknown> | undefined
  store.readPages = async (collection) => {
    if (raced === undefined && collection === 'r/lww/secret') {
      // The refusal job loads `secret`: an increment arrives while it is under way.
      raced = engine.counterAdd('likes', 2)
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    return load(collection)
  }
  const commit = store.commit.bind(store)
  let inMemoryAtRefusal: Value | undefined
  store.commit = async (batch) => {
    // The job's own commit: memory has been taken back by now, the queued increment not yet committed.
    if (inMemoryAtRefusal === undefined && raced !== undefined && batch.meta?.some((m) => m.key === 'rejected')) inMemoryAtRefusal = await value(engine)
    return commit(batch)
  }
  await engine.setOffline(false)
  await waitFor('the refusals were taken back', () => inMemoryAtRefusal !== undefined, 10_000)
  // The queued increment's own outbox entry carries slot 5 (3 + 2: a counter's entry totals
  // every increment, see withoutWrite); memory must not hold less than what it will send.
  expect(inMemoryAtRefusal).toBe(5)
  unwrap((await raced) as never)
  await waitFor('every write settled', async () => (await engine.status()).pendingWrites === 0, 10_000)
  // The increment is refused in turn (a reader still): only now is the slot the relay's (none).
  expect(await value(engine)).toBe(0)
})
