/**
 * The EngineApi across a real MessageChannel with comlink, as a tab sees it: typed errors
 * keep their class and code, callbacks fire, a failing tab callback does not break other
 * tabs, and the worker host creates the engine on the first tab's `init`.
 */
import * as Comlink from 'comlink'
import { afterEach, describe, expect, it } from 'vitest'
import { InvalidValueError, WorkerUnavailableError, deserializeError } from '@outpost/core'
import type { EngineApi, EngineHostApi, EngineStatus, Row } from '../src/engine-api'
import { exposeEngine } from '../src/expose'
import { startSharedWorker, type SharedWorkerScopeLike } from '../src/shared-worker-host'
import { engineOn, freshIdb, unwrap, waitFor } from './helpers'

const cleanup: (() => unknown)[] = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

function channel(): { tab: MessagePort; worker: MessagePort } {
  const { port1, port2 } = new MessageChannel()
  cleanup.push(() => {
    port1.close()
    port2.close()
  })
  return { tab: port1, worker: port2 }
}

describe('EngineApi over comlink', () => {
  it('keeps error classes and codes, and fires callbacks in every tab', async () => {
    const engine = engineOn(freshIdb())
    cleanup.push(() => engine.close())
    const a = channel()
    const b = channel()
    exposeEngine(engine, a.worker)
    exposeEngine(engine, b.worker)
    const tabA = Comlink.wrap<EngineApi>(a.tab)
    const tabB = Comlink.wrap<EngineApi>(b.tab)

    const bad = await tabA.set('m', 'k', { n: Number.NaN })
    expect(bad.ok).toBe(false)
    const error = bad.ok ? undefined : deserializeError(bad.error)
    expect(error).toBeInstanceOf(InvalidValueError)
    expect(error?.code).toBe('INVALID_VALUE')

    const rowsA: (readonly Row[])[] = []
    const rowsB: (readonly Row[])[] = []
    unwrap(await tabA.subscribeQuery({ map: 'todos' }, Comlink.proxy((rows: readonly Row[]) => void rowsA.push(rows))))
    const idB = unwrap(await tabB.subscribeQuery({ map: 'todos' }, Comlink.proxy((rows: readonly Row[]) => void rowsB.push(rows))))
    const receipt = unwrap(await tabA.set('todos', 't1', { title: 'x', at: new Date(5), big: 10n }))
    expect(receipt.opId).toBeGreaterThan(0)
    await waitFor('both tabs see the write', () => rowsA.at(-1)?.length === 1 && rowsB.at(-1)?.length === 1)
    expect(rowsB.at(-1)?.[0]).toEqual({ key: 't1', value: { title: 'x', at: new Date(5), big: 10n } })

    await tabB.unsubscribeQuery(idB)
    const countB = rowsB.length
    unwrap(await tabA.set('todos', 't2', { title: 'y' }))
    await waitFor('tab A sees the second write', () => rowsA.at(-1)?.length === 2)
    expect(rowsB.length).toBe(countB)

    const statuses: EngineStatus[] = []
    await tabB.subscribeStatus(Comlink.proxy((s: EngineStatus) => void statuses.push(s)))
    await waitFor('status callback', () => statuses.length > 0)
    expect(statuses[0]).toMatchObject({ mode: 'in-page', durable: true, pendingWrites: 2, connection: 'offline' })
  })

  it("a tab callback that throws does not stop other tabs' updates", async () => {
    const engine = engineOn(freshIdb())
    cleanup.push(() => engine.close())
    const a = channel()
    const b = channel()
    exposeEngine(engine, a.worker)
    exposeEngine(engine, b.worker)
    const tabA = Comlink.wrap<EngineApi>(a.tab)
    const tabB = Comlink.wrap<EngineApi>(b.tab)
    unwrap(await tabA.subscribeRecord('m', 'k', Comlink.proxy(() => {
      throw new Error('tab A is broken')
    })))
    const seen: unknown[] = []
    unwrap(await tabB.subscribeRecord('m', 'k', Comlink.proxy((v: unknown) => void seen.push(v))))
    unwrap(await tabB.set('m', 'k', { n: 1 }))
    unwrap(await tabB.set('m', 'k', { n: 2 }))
    await waitFor('tab B sees both writes', () => seen.length === 3)
    expect(seen).toEqual([undefined, { n: 1 }, { n: 2 }])
  })

  it('the shared worker host registers connect synchronously and starts the engine on the first init', async () => {
    const scope: SharedWorkerScopeLike = { onconnect: null }
    startSharedWorker(scope, { indexedDB: freshIdb() })
    expect(typeof scope.onconnect).toBe('function')
    const a = channel()
    const b = channel()
    scope.onconnect?.({ ports: [a.worker] })
    scope.onconnect?.({ ports: [b.worker] })
    const tabA = Comlink.wrap<EngineHostApi>(a.tab)
    const tabB = Comlink.wrap<EngineHostApi>(b.tab)
    const early = await tabB.ready()
    expect(!early.ok && deserializeError(early.error)).toBeInstanceOf(WorkerUnavailableError)
    const status = unwrap(await tabA.init({ name: 'host', mode: 'shared-worker' }))
    expect(status.mode).toBe('shared-worker')
    // A second tab's init reuses the engine (its options are ignored).
    expect(unwrap(await tabB.init({ name: 'other', mode: 'in-page' })).mode).toBe('shared-worker')
    unwrap(await tabA.set('m', 'k', { v: 1 }))
    expect(unwrap(await tabB.get('m', 'k'))).toEqual({ v: 1 })
    const progress: unknown[] = []
    const { opId } = unwrap(await tabB.set('m', 'k2', { v: 2 }))
    await tabB.watchWrite(opId, Comlink.proxy((c: unknown) => void progress.push(c)))
    expect(progress).toEqual([])
  })
})
