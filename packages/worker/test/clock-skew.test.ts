/**
 * Skewed clocks (issue 10 §2). A device whose clock is minutes off writes offline, then
 * connects: its writes persist within seconds of `welcome` (they are re-stamped under the
 * offset the relay measured, in order), a write it makes after welcome persists too, and a
 * later edit made elsewhere is not overwritten by a future stamp; a slow device's later
 * edit is not lost to an earlier one either. Real relay, engines on fake IndexedDB.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { createRelay, type Relay } from '@outpost/server-lite'
import type { Engine } from '../src/engine'
import { engineOn, freshIdb, tempDir, unwrap, waitFor } from './helpers'

const FIVE_MINUTES = 5 * 60_000
let relay: Relay
let remove: () => void
const engines = new Set<Engine>()

afterEach(async () => {
  for (const e of engines) await e.close()
  engines.clear()
  await relay.close()
  remove()
})

async function setup(): Promise<void> {
  const dir = tempDir()
  remove = dir.remove
  relay = await createRelay({ port: 0, host: '127.0.0.1', dataDir: dir.path, logLevel: 'silent' })
}

function start(skewMs: number, options: Parameters<typeof engineOn>[1] = {}): Engine {
  const engine = engineOn(freshIdb(), { url: relay.url, now: () => Date.now() + skewMs, ...options })
  engines.add(engine)
  return engine
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

async function settled(engine: Engine, timeoutMs: number): Promise<number> {
  const started = Date.now()
  await waitFor('every write persisted', async () => (await engine.status()).pendingWrites === 0, timeoutMs)
  return Date.now() - started
}

describe('clock skew of ±5 minutes', () => {
  it('a fast device: offline writes persist within seconds and do not overwrite a later edit elsewhere', async () => {
    await setup()
    const other = start(0)
    unwrap(await other.subscribeShape({ map: 'docs' }))
    await waitFor('other live', async () => (await other.status()).connection === 'live')

    const fast = start(FIVE_MINUTES, { startOffline: true })
    unwrap(await fast.subscribeShape({ map: 'docs' }))
    unwrap(await fast.set('docs', 'd', { title: 'from the fast device, first' }))
    unwrap(await fast.set('docs', 'only-fast', { n: 1 }))
    await pause(50)
    // A later edit, in real time, on a device with a correct clock.
    unwrap(await other.set('docs', 'd', { title: 'from the other device, later' }))
    await waitFor('other persisted', async () => (await other.status()).pendingWrites === 0)

    await fast.setOffline(false)
    const ms = await settled(fast, 10_000)
    console.log(`[figure] 5 min fast: offline writes persisted ${ms} ms after going online`)
    unwrap(await fast.update('docs', 'only-fast', { n: 2 }))
    await settled(fast, 10_000)
    expect((await fast.status()).lastError?.code).not.toBe('CLOCK_DRIFT')

    const expected = { title: 'from the other device, later' }
    await waitFor('both agree on the later edit', async () => JSON.stringify(unwrap(await fast.get('docs', 'd'))) === JSON.stringify(expected) && JSON.stringify(unwrap(await other.get('docs', 'd'))) === JSON.stringify(expected), 10_000)
    await waitFor('the write after welcome arrived', async () => unwrap(await other.get('docs', 'only-fast'))?.['n'] === 2, 10_000)
  })

  it('a slow device: its later offline edit wins over an earlier one elsewhere', async () => {
    await setup()
    const other = start(0)
    unwrap(await other.subscribeShape({ map: 'docs' }))
    unwrap(await other.set('docs', 'd', { title: 'from the other device, first' }))
    await waitFor('other persisted', async () => (await other.status()).pendingWrites === 0)
    await pause(50)

    const slow = start(-FIVE_MINUTES, { startOffline: true })
    unwrap(await slow.subscribeShape({ map: 'docs' }))
    unwrap(await slow.set('docs', 'd', { title: 'from the slow device, later' }))
    await slow.setOffline(false)
    await settled(slow, 10_000)
    const expected = { title: 'from the slow device, later' }
    await waitFor('both agree on the later edit', async () => JSON.stringify(unwrap(await slow.get('docs', 'd'))) === JSON.stringify(expected) && JSON.stringify(unwrap(await other.get('docs', 'd'))) === JSON.stringify(expected), 10_000)
  })

  it('remembers the corrected offset: offline writes after a restart are stamped in corrected time', async () => {
    await setup()
    const idb = freshIdb()
    let fast = engineOn(idb, { url: relay.url, now: () => Date.now() + FIVE_MINUTES })
    engines.add(fast)
    unwrap(await fast.ready())
    await waitFor('live', async () => (await fast.status()).connection === 'live')
    await fast.close()
    engines.delete(fast)
    fast = engineOn(idb, { url: relay.url, now: () => Date.now() + FIVE_MINUTES, startOffline: true })
    engines.add(fast)
    unwrap(await fast.set('docs', 'x', { v: 1 }))
    await fast.flush()
    const stamp = (fast.store && (await fast.store.scan('outbox'))[0]?.value) as unknown as { change: { state: { fields: [string, unknown, string][] } } }
    const wall = parseInt(stamp.change.state.fields[0]?.[2].slice(0, 10) ?? '0', 36)
    expect(Math.abs(wall - Date.now())).toBeLessThan(5_000)
  })
})
