/**
 * A local commit that fails (quota, a broken store) is undone in memory: its keys go back
 * to what is durable. A second write of the same key made while the failing commit was under
 * way is already merged into memory and queued; undoing the failed write must not take it
 * back too — it commits next and its caller is told it is durable, so memory (and the record
 * that commit stores, built from memory) must hold it. No relay: the engine is offline; only
 * the store's commit is made to fail once.
 */
import { afterEach, expect, it } from 'vitest'
import type { Engine } from '../src/engine'
import { OUTBOX_COLLECTION } from '../src/outbox'
import { engineOn, freshIdb, unwrap } from './helpers'

const engines = new Set<Engine>()

afterEach(async () => {
  for (const e of engines) await e.close()
  engines.clear()
})

it('a write made while a failing commit of the same key is under way is kept', async () => {
  const idb = freshIdb()
  const engine = engineOn(idb, { url: 'ws://127.0.0.1:9', startOffline: true })
  engines.add(engine)
  unwrap(await engine.set('notes', 'k', { title: 't' }))
  const store = engine.store
  if (store === undefined) throw new Error('engine has no store')
  const commit = store.commit.bind(store)
  let second: ReturnType<Engine['update']> | undefined
  store.commit = async (batch) => {
    if (second === undefined && batch.puts?.some((p) => p.collection === OUTBOX_COLLECTION)) {
      // The first update's commit: a second update of the key arrives, then the commit fails.
      second = engine.update('notes', 'k', { body: 'kept' })
      await new Promise((resolve) => setTimeout(resolve, 20))
      throw new Error('simulated store failure')
    }
    return commit(batch)
  }
  const first = await engine.update('notes', 'k', { color: 'red' })
  expect(first.ok).toBe(false)
  if (second === undefined) throw new Error('the second update was not made')
  unwrap(await second)
  // The failed update is gone, the one reported durable is there: in memory and in the store.
  expect(unwrap(await engine.get('notes', 'k'))).toEqual({ title: 't', body: 'kept' })
  await engine.close()
  engines.delete(engine)
  const reopened = engineOn(idb, { url: 'ws://127.0.0.1:9', startOffline: true })
  engines.add(reopened)
  expect(unwrap(await reopened.get('notes', 'k'))).toEqual({ title: 't', body: 'kept' })
})
